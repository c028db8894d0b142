package server

import (
	"github.com/bulwark-security/bulwark/internal/store"
)

// Exported for the external tests (package server_test), which drive the
// server through internal/cli (which imports this package).

type Env = env

var (
	Backends      = backends
	StartEnv      = startEnv
	ImportDB      = importDB
	AdvisoryFiles = advisoryFiles
	DemoImagePath = demoImagePath
	WaitFor       = waitFor
)

func (e *env) Store() *store.Store       { return e.st }
func (e *env) URL() string               { return e.url }
func (e *env) CAPath() string            { return e.caPath }
func (e *env) Admin() string             { return e.admin }
func (e *env) Token(r store.Role) string { return e.token(r) }
func (e *env) Server() *Server           { return e.srv }
func (e *env) Get(path string, v any)    { e.get(path, v) }
func (e *env) Do(method, path, token string, body any, hdr ...string) (int, []byte) {
	return e.do(method, path, token, body, hdr...)
}
