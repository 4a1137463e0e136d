package api

// codec converts a profile's records and events; being written (issue 2).
type codec interface{}

type cc42Codec struct{}
