// Command terway is the static CNI shim that kubelet execs: it forwards one CNI invocation
// (the CNI_* and TERWAY_* environment, stdin, and the netns as a descriptor) to the terway
// daemon over a unix socket and prints the daemon's reply verbatim.
//
// It deliberately holds no CNI logic: the daemon (Python) validates the config and converts
// results, so this binary never needs to change when CNI behaviour does. It only answers by
// itself when it cannot reach the daemon at all (protocol 2, docs/cni.md).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	protocolVersion = 2
	defaultSocket   = "/var/run/eni/eni.socket"
	maxStdin        = 1 << 20 // a network config is a few KiB; refuse anything absurd
	maxFrame        = 8 << 20 // the request carries the config plus the environment
	maxTimeout      = 600.0
	defaultVersion  = "1.1.0" // cniVersion of our own errors when the config names none
	daemonDetails   = "the runtime retries; check the terway pod on this node"
	codeTryLater    = 11 // CNI "try again later": the runtime retries the invocation
	codeUnavailable = 50 // CNI "plugin not available": STATUS's answer when ADD cannot be served
	codeIOFailure   = 5
	codeDecode      = 6
)

// Per-verb deadlines: ADD may wait for the daemon to call the cloud; STATUS must answer at once.
var defaultTimeouts = map[string]float64{"ADD": 30, "DEL": 30, "CHECK": 10, "STATUS": 5, "GC": 30, "VERSION": 5}

// cniError is an error the shim answers itself, printed as a CNI error object.
type cniError struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

type request struct {
	Protocol int               `json:"protocol"`
	Env      map[string]string `json:"env"`
	Stdin    string            `json:"stdin"`
	NetnsFD  bool              `json:"netns_fd"`
}

type reply struct {
	Protocol int    `json:"protocol"`
	Exit     *int   `json:"exit"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// netconf holds the few config keys the shim itself needs; the daemon validates the rest.
type netconf struct {
	cniVersion string
	socket     string
	timeout    float64 // 0 when absent or invalid
}

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--version" {
		fmt.Fprintf(stdout, "terway CNI shim %s (protocol %d)\n", version, protocolVersion)
		return 0
	}
	env := cniEnv(environ)
	// Read one byte past the limit so an oversized config is detected without reading it all.
	// A read error (no stdin at all) leaves what was read: the daemon reports a bad config.
	input, _ := io.ReadAll(io.LimitReader(stdin, maxStdin+1))
	conf := parseNetconf(input)
	if len(input) > maxStdin {
		return fail(stdout, conf, codeDecode, fmt.Sprintf("network config on stdin is larger than %d bytes", maxStdin), "")
	}
	socketPath := chooseSocket(env, conf)
	timeout := chooseTimeout(env, conf)
	rep, cerr := exchange(socketPath, timeout, env, input)
	if cerr != nil && cerr.Code == codeTryLater && env["CNI_COMMAND"] == "STATUS" {
		cerr.Code, cerr.Msg = codeUnavailable, "plugin not available: "+cerr.Msg
	}
	if cerr != nil {
		return fail(stdout, conf, cerr.Code, cerr.Msg, cerr.Details)
	}
	io.WriteString(stdout, rep.Stdout)
	io.WriteString(stderr, rep.Stderr)
	return *rep.Exit
}

// cniEnv keeps only the variables the daemon may look at: the CNI ones and our own.
func cniEnv(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CNI_") || strings.HasPrefix(name, "TERWAY_") {
			env[name] = value
		}
	}
	return env
}

// parseNetconf never fails: a config that is not JSON is the daemon's to report.
func parseNetconf(input []byte) netconf {
	conf := netconf{cniVersion: defaultVersion}
	var raw map[string]interface{}
	if json.Unmarshal(input, &raw) != nil {
		return conf
	}
	if v, ok := raw["cniVersion"].(string); ok {
		conf.cniVersion = v
	}
	if v, ok := raw["daemon_socket"].(string); ok {
		conf.socket = v
	}
	if v, ok := raw["daemon_timeout"].(float64); ok && validTimeout(v) {
		conf.timeout = v
	}
	return conf
}

func validTimeout(t float64) bool { return t > 0 && t <= maxTimeout } // false for NaN too

func chooseSocket(env map[string]string, conf netconf) string {
	if env["TERWAY_DAEMON_SOCKET"] != "" {
		return env["TERWAY_DAEMON_SOCKET"]
	}
	if conf.socket != "" {
		return conf.socket
	}
	return defaultSocket
}

func chooseTimeout(env map[string]string, conf netconf) float64 {
	if t, err := strconv.ParseFloat(env["TERWAY_DAEMON_TIMEOUT"], 64); err == nil && validTimeout(t) {
		return t
	}
	if conf.timeout > 0 {
		return conf.timeout
	}
	if t, ok := defaultTimeouts[env["CNI_COMMAND"]]; ok {
		return t
	}
	return 30
}

// encodeRequest builds one frame: compact JSON and "\n" (HTML escaping off, so it stays readable).
func encodeRequest(env map[string]string, input []byte, netnsFD bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(request{protocolVersion, env, string(input), netnsFD}); err != nil {
		return nil, err
	}
	if buf.Len() > maxFrame {
		return nil, fmt.Errorf("request to the terway daemon is larger than %d bytes", maxFrame)
	}
	return buf.Bytes(), nil
}

// exchange sends one request and reads one reply within one deadline (connect + send + receive).
func exchange(socketPath string, timeout float64, env map[string]string, input []byte) (*reply, *cniError) {
	deadline := time.Now().Add(time.Duration(timeout * float64(time.Second)))
	netnsFD := openNetns(env["CNI_NETNS"])
	// The daemon holds its own copy once the descriptor is sent: ours goes right after sending,
	// or on any earlier return.
	release := func() {
		if netnsFD >= 0 {
			syscall.Close(netnsFD)
			netnsFD = -1
		}
	}
	defer release()
	frame, err := encodeRequest(env, input, netnsFD >= 0)
	if err != nil {
		return nil, &cniError{Code: codeDecode, Msg: err.Error()}
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.Dial("unix", socketPath)
	if err != nil {
		if isTimeout(err) {
			return nil, timeoutError(socketPath, timeout)
		}
		return nil, &cniError{Code: codeTryLater, Details: daemonDetails,
			Msg: fmt.Sprintf("terway daemon is not running: %s: %s", socketPath, reason(err))}
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	err = send(conn.(*net.UnixConn), frame, netnsFD)
	release()
	if err == nil {
		var rep *reply
		if rep, err = receive(conn); err == nil {
			return rep, nil
		}
	}
	if isTimeout(err) {
		return nil, timeoutError(socketPath, timeout)
	}
	return nil, &cniError{Code: codeIOFailure, Details: daemonDetails,
		Msg: fmt.Sprintf("talking to the terway daemon at %s failed: %s", socketPath, reason(err))}
}

// openNetns returns -1 when there is no netns to pass; the daemon then opens the path itself.
func openNetns(path string) int {
	if path == "" {
		return -1
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// send passes the netns descriptor with the first bytes, so the daemon holds the very namespace
// the runtime named even if the path is unmounted or reused meanwhile.
func send(conn *net.UnixConn, frame []byte, netnsFD int) error {
	if netnsFD < 0 {
		_, err := conn.Write(frame)
		return err
	}
	n, _, err := conn.WriteMsgUnix(frame, syscall.UnixRights(netnsFD), nil)
	if err == nil && n < len(frame) {
		_, err = conn.Write(frame[n:])
	}
	return err
}

func receive(conn net.Conn) (*reply, error) {
	line, err := bufio.NewReader(io.LimitReader(conn, maxFrame)).ReadBytes('\n')
	if errors.Is(err, io.EOF) {
		if len(line) >= maxFrame {
			return nil, fmt.Errorf("reply is larger than %d bytes", maxFrame)
		}
		return nil, errors.New("connection closed before a complete reply")
	}
	if err != nil {
		return nil, err
	}
	return decodeReply(line)
}

func decodeReply(line []byte) (*reply, error) {
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("bad reply: %v", err)
	}
	if rep.Protocol != protocolVersion {
		return nil, fmt.Errorf("bad reply: protocol %d is not %d", rep.Protocol, protocolVersion)
	}
	if rep.Exit == nil || *rep.Exit < 0 || *rep.Exit > 255 {
		return nil, errors.New("bad reply: 'exit' must be an integer from 0 to 255")
	}
	return &rep, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func timeoutError(socketPath string, timeout float64) *cniError {
	return &cniError{Code: codeTryLater, Details: daemonDetails,
		Msg: fmt.Sprintf("terway daemon did not answer in time: %s: no reply within %ss",
			socketPath, strconv.FormatFloat(timeout, 'g', -1, 64))}
}

// reason strips Go's "dial unix /path:" prefix: the message already names the socket.
func reason(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	return err.Error()
}

// fail prints a CNI error object (indented like the reference plugins) and exits 1.
func fail(stdout io.Writer, conf netconf, code int, msg, details string) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	enc.Encode(cniError{conf.cniVersion, code, msg, details})
	return 1
}
