package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-security/bulwark/internal/store"
)

// apiError is an error with its HTTP status and machine-readable code,
// for failures this package detects itself (bad JSON, wrong role...).
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, "invalid", format, args...)
}

var (
	errForbidden = &apiError{http.StatusForbidden, "forbidden", "this token's role may not do that"}
	errNoToken   = &apiError{http.StatusUnauthorized, "unauthorized", "missing or malformed Authorization: Bearer token"}
)

// errorStatus is the one mapping from errors to HTTP: store sentinels,
// this package's apiErrors, body limits. Anything else is a 500 whose
// detail is logged, not sent.
func errorStatus(err error) (status int, code, msg string) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code, ae.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "invalid", err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "conflict", "already exists (a unique name or value is taken)"
	case errors.Is(err, store.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized", "invalid, expired or revoked credentials"
	case errors.Is(err, store.ErrNoSecretKey):
		return http.StatusServiceUnavailable, "no_secret_key", "the server has no secret key for registry credentials"
	case errors.Is(err, store.ErrStorageFull):
		// 507: the request was fine and may be sent again as it is once an
		// operator made room; senders (sensor, audit webhook, registries)
		// treat a 5xx as "retry later" and keep their records meanwhile.
		return http.StatusInsufficientStorage, "storage_full",
			"central's storage is full: nothing from this request was stored; retry later (operators: free or add disk space for the database)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "unavailable", "the request was cancelled or timed out"
	}
	return http.StatusInternalServerError, "internal", "internal error (see the server log)"
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
	case http.StatusInsufficientStorage:
		w.Header().Set("Retry-After", "30")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{errorDetail{Code: code, Message: msg}})
}
