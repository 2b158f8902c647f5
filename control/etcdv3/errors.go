package etcdv3

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the cluster that callers tell apart, matched by errors.Is
// against the *Error of a call (their text is etcd's message).
var (
	ErrCompacted        = errors.New("etcdserver: mvcc: required revision has been compacted")
	ErrFutureRev        = errors.New("etcdserver: mvcc: required revision is a future revision")
	ErrNoLeader         = errors.New("etcdserver: no leader")
	ErrTimeout          = errors.New("etcdserver: request timed out")
	ErrTooManyOps       = errors.New("etcdserver: too many operations in txn request")
	ErrDuplicateKey     = errors.New("etcdserver: duplicate key given in txn request")
	ErrEmptyKey         = errors.New("etcdserver: key is not provided")
	ErrRequestTooLarge  = errors.New("etcdserver: request is too large")
	ErrUserEmpty        = errors.New("etcdserver: user name is empty")
	ErrAuthFailed       = errors.New("etcdserver: authentication failed, invalid user ID or password")
	ErrInvalidAuthToken = errors.New("etcdserver: invalid auth token")
	ErrAuthOldRevision  = errors.New("etcdserver: revision of auth store is old")
	ErrPermissionDenied = errors.New("etcdserver: permission denied")
	ErrAuthNotEnabled   = errors.New("etcdserver: authentication is not enabled")
)

var known = []error{
	ErrCompacted, ErrFutureRev, ErrNoLeader, ErrTimeout, ErrTooManyOps,
	ErrDuplicateKey, ErrEmptyKey, ErrRequestTooLarge, ErrUserEmpty,
	ErrAuthFailed, ErrInvalidAuthToken, ErrAuthOldRevision, ErrPermissionDenied,
	ErrAuthNotEnabled,
}

// ErrClosed is the error of a call made on, or ended by, a closed Client.
var ErrClosed = errors.New("etcdv3: client closed")

// Error is an error answered by the cluster.
type Error struct {
	// Code is the gRPC status code (0 if unknown), e.g. 11 (out of
	// range) for a compacted revision.
	Code int
	// Message is etcd's message, e.g. "etcdserver: no leader".
	Message string
	// HTTPStatus is the gateway's HTTP status (0 for an error in a watch
	// stream).
	HTTPStatus int
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("etcdv3: error code %d (HTTP %d)", e.Code, e.HTTPStatus)
	}
	return e.Message
}

// Is matches the sentinel errors by etcd's message.
func (e *Error) Is(target error) bool {
	for _, k := range known {
		if target == k {
			return e.Message == k.Error()
		}
	}
	return false
}

// reasonError is the error of a watch canceled by the server for reason,
// which is etcd's message, possibly inside a gRPC status text
// ("rpc error: code = X desc = MESSAGE").
func reasonError(reason string) error {
	if reason == "" {
		return errors.New("etcdv3: watch canceled by the server")
	}
	if _, desc, ok := strings.Cut(reason, " desc = "); ok {
		reason = desc
	}
	return &Error{Message: reason}
}
