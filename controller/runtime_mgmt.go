package controller

import (
	"fmt"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// encodeDeploy converts a Management deploy_request to its wire event. As
// with cc42's configuration push, every agent of a deployment gets the
// same Configuration and only the reqid differs, so its Broker value is
// built once per deployment.
func (c *Controller) encodeDeploy(d api.AgentDeployRequest) (broker.Event, error) {
	key := configKeyOf(d.Config)
	if key != c.deployKey || !c.deployValid {
		v, err := c.profile.ConfigurationValue(d.Config)
		if err == nil {
			// Encode the JSON once too: every frame of the batch copies it.
			v, err = broker.Preencoded(v)
		}
		if err != nil {
			return broker.Event{}, fmt.Errorf("encode deploy_request arg 1 (config): %w", err)
		}
		c.deployKey, c.deployValue, c.deployValid = key, v, true
	}
	name, _ := c.profile.EventName(api.KindAgentDeployRequest)
	return broker.NewEvent(name, broker.String(d.Reqid), c.deployValue, broker.Bool(d.Force)), nil
}
