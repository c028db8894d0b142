// Package console is central's web console: server-rendered HTML pages
// (html/template) over the store, with embedded CSS, a few lines of
// JavaScript and charts drawn as inline SVG on the server, so the console
// works from the single binary with no network, no CDN and no build step.
//
// New returns an http.Handler that bulwark server mounts at "/" (or under a
// base path). Every page needs a login: a username and password
// (store.Authenticate) or an API token (store.VerifyToken) are exchanged for
// a session cookie signed with HMAC-SHA256 under Config.SessionKey. The
// session is stateless so any replica behind a load balancer accepts it;
// the user or token behind it is looked up again on every request, so a
// disabled user, a changed password or a revoked token ends its sessions at
// once. Every POST carries a CSRF token bound to the session (and the
// Origin is checked), failed logins are rate-limited per client address,
// and roles are enforced: analysts read, admins also add registries.
//
// Query parameters are validated (bounded lengths, enumerations and sort
// keys from whitelists) before they reach the store, and html/template
// escapes everything the store returns, charts included: advisory text and
// image names are outside data.
//
// The package talks to the store through the Store interface (the methods
// it uses of *store.Store) and to the rest of central through the optional
// functions in Deps. It must not import internal/server or internal/cli
// (the server imports this package, not the reverse), and it must not
// reach the network itself: testing a registry connection is a Deps hook.
package console
