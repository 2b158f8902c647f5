// Package etcdtest runs throwaway single-member etcd servers for tests:
// the machine's etcd binary (Debian's etcd-server package; `make tools`
// installs it), listening on 127.0.0.1 at random free ports with a data
// dir of its own, killed by its PID when the test ends.
//
// It is for tests only: control's store tests, and process tests that run
// several edges on one etcd. It is not a way to run etcd for real (one
// member, no TLS, no auth, no persistence beyond the test), and it never
// downloads etcd: without the binary the test is skipped, or fails when
// CI=true, naming the package to install.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrNotInstalled is returned (wrapped) by Launch when no etcd binary is
// found.
var ErrNotInstalled = errors.New("etcd not found in PATH nor at /usr/bin/etcd: install it with `apt-get install -y etcd-server` (or `make tools`)")

// ReadyTimeout bounds how long Launch and Restart wait for the server to
// answer.
const ReadyTimeout = 20 * time.Second

// Binary returns the path of the etcd binary: the one in PATH, else
// /usr/bin/etcd.
func Binary() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	const deb = "/usr/bin/etcd"
	if fi, err := os.Stat(deb); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return deb, nil
	}
	return "", ErrNotInstalled
}

// Unavailable ends the test for a Launch error: skipped if etcd is not
// installed (failed when CI=true, where it must be), failed otherwise.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// Start launches a server for the test and returns its client endpoint,
// "127.0.0.1:PORT". The server is killed when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).Endpoint
}

// StartServer is Start returning the server, for tests that stop and
// restart it.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := Launch(t.TempDir())
	if err != nil {
		Unavailable(t, err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Server is one etcd process. Its methods are safe for concurrent use.
type Server struct {
	// Endpoint is the client address, "127.0.0.1:PORT"; it stays the same
	// across Restart.
	Endpoint string

	bin  string
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Launch starts a server whose data and log live in dir (which must
// exist) and waits until it answers. The caller must Stop it.
func Launch(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var last error
	// The free ports are found by listening on port 0 and closing:
	// another process may take one before etcd binds it, so try again.
	for attempt := range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		s := &Server{
			Endpoint: "127.0.0.1:" + strconv.Itoa(ports[0]),
			bin:      bin,
			dir:      dir,
			args: []string{
				"--name", "etcdtest",
				"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
				"--listen-client-urls", client,
				"--advertise-client-urls", client,
				"--listen-peer-urls", peer,
				"--initial-advertise-peer-urls", peer,
				"--initial-cluster", "etcdtest=" + peer,
				"--initial-cluster-state", "new",
				"--logger", "zap",
				"--log-outputs", "stderr",
				"--log-level", "warn",
				// One member on loopback: elect it at once.
				"--heartbeat-interval", "10",
				"--election-timeout", "100",
			},
		}
		if last = s.start(); last == nil {
			return s, nil
		}
	}
	return nil, last
}

// PID is the process ID of the running server (0 when stopped).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server (SIGKILL to its PID) and waits for it to exit.
// Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	err := s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("etcdtest: kill etcd: %w", err)
	}
	return nil
}

// Restart stops the server if it runs and starts it again on the same
// ports and data: the keys written before are there again.
func (s *Server) Restart() error {
	s.mu.Lock()
	if err := s.stopLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return s.start()
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "etcd.log") }

// start runs the process and waits until it answers on the client port.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("etcdtest: already running")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("etcdtest: start %s: %w", s.bin, err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		return fmt.Errorf("etcdtest: etcd on %s: %w\n%s", s.Endpoint, err, s.logTail())
	}
	return nil
}

// waitReady polls /health until etcd reports a leader.
func (s *Server) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	url := "http://" + s.Endpoint + "/health"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := c.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %v", ReadyTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logTail is the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cleanEnv is the environment without ETCD_* variables, which etcd would
// read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePorts returns n distinct loopback TCP ports free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
