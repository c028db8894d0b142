package server

import _ "embed"

// openAPIDocument is the hand-written OpenAPI 3 description of the API,
// served at /api/v1/openapi.json. TestOpenAPIMatchesRoutes keeps its
// paths and methods equal to the route table.
//
//go:embed openapi.json
var openAPIDocument []byte
