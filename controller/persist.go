package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// StateFileName is the file in Options.StateDir that keeps the Management
// profile's configurations.
const StateFileName = "mgmt-configs.json"

const (
	stateFormat  = "zcc-controller-state"
	stateVersion = 1
)

// stateFile is the JSON layout of the state file. Each configuration is
// the Broker JSON of a Management::Configuration record (the wire form),
// or null when absent.
type stateFile struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Profile  string          `json:"profile"`
	Staged   json.RawMessage `json:"staged"`
	Ready    json.RawMessage `json:"ready"`
	Deployed json.RawMessage `json:"deployed"`
}

// prepareStateDir checks Options.StateDir, creates it if needed, loads
// what an earlier run kept into opts.Mgmt.Restore and returns the state
// file's path ("" without a state directory).
func prepareStateDir(opts *Options) (string, error) {
	if opts.StateDir == "" {
		return "", nil
	}
	if !opts.Profile.Supports(api.KindDeployRequest) {
		return "", fmt.Errorf("controller: a state directory needs the mgmt profile (profile %s has no configurations to keep)", opts.Profile.Name)
	}
	if opts.Mgmt.Restore != nil {
		return "", errors.New("controller: set StateDir or Mgmt.Restore, not both")
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return "", fmt.Errorf("controller: state directory: %w", err)
	}
	path := filepath.Join(opts.StateDir, StateFileName)
	restored, err := loadState(path, opts.Profile)
	if err != nil {
		return "", fmt.Errorf("controller: %w", err)
	}
	opts.Mgmt.Restore = restored
	return path, nil
}

// loadState reads a state file; a missing file is a fresh start (nil).
func loadState(path string, p *api.Profile) (*StoredConfigs, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("state file %s: not a zcc state file: %w", path, err)
	}
	if f.Format != stateFormat || f.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: format %q version %d, want %q version %d", path, f.Format, f.Version, stateFormat, stateVersion)
	}
	if f.Profile != p.Name {
		return nil, fmt.Errorf("state file %s: written for profile %q, the controller runs %q", path, f.Profile, p.Name)
	}
	var s StoredConfigs
	for _, field := range []struct {
		name string
		raw  json.RawMessage
		dst  **api.Configuration
	}{{"staged", f.Staged, &s.Staged}, {"ready", f.Ready, &s.Ready}, {"deployed", f.Deployed, &s.Deployed}} {
		if len(field.raw) == 0 || string(field.raw) == "null" {
			continue
		}
		v, err := broker.DecodeValue(field.raw)
		if err != nil {
			return nil, fmt.Errorf("state file %s: %s configuration: %w", path, field.name, err)
		}
		cfg, err := p.DecodeConfiguration(v)
		if err != nil {
			return nil, fmt.Errorf("state file %s: %s configuration: %w", path, field.name, err)
		}
		*field.dst = &cfg
	}
	return &s, nil
}

// saveState writes the state file atomically: a temporary file in the same
// directory, synced, then renamed over the old one, and the directory
// synced, so a crash leaves either the old or the new state.
func saveState(path string, p *api.Profile, s StoredConfigs) error {
	f := stateFile{Format: stateFormat, Version: stateVersion, Profile: p.Name}
	for _, field := range []struct {
		name string
		cfg  *api.Configuration
		dst  *json.RawMessage
	}{{"staged", s.Staged, &f.Staged}, {"ready", s.Ready, &f.Ready}, {"deployed", s.Deployed, &f.Deployed}} {
		*field.dst = json.RawMessage("null")
		if field.cfg == nil {
			continue
		}
		v, err := p.ConfigurationValue(*field.cfg)
		if err != nil {
			return fmt.Errorf("encode the %s configuration: %w", field.name, err)
		}
		b, err := broker.EncodeValue(v)
		if err != nil {
			return fmt.Errorf("encode the %s configuration: %w", field.name, err)
		}
		*field.dst = b
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+StateFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("write state file %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write state file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("sync state file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace state file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // makes the rename durable; not every file system supports it
		_ = d.Close()
	}
	return nil
}
