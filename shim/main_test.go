package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCniEnvKeepsOnlyCNIAndTerwayVariables(t *testing.T) {
	env := cniEnv([]string{"CNI_COMMAND=ADD", "TERWAY_X=a=b", "PATH=/bin", "CNIX=1", "HOME=/root", "CNI_ARGS="})
	want := map[string]string{"CNI_COMMAND": "ADD", "TERWAY_X": "a=b", "CNI_ARGS": ""}
	if len(env) != len(want) {
		t.Fatalf("got %v, want %v", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Fatalf("%s: got %q, want %q", k, env[k], v)
		}
	}
}

func TestSocketPrecedence(t *testing.T) {
	conf := parseNetconf([]byte(`{"daemon_socket": "/conf.sock"}`))
	if got := chooseSocket(map[string]string{"TERWAY_DAEMON_SOCKET": "/env.sock"}, conf); got != "/env.sock" {
		t.Fatalf("env should win, got %s", got)
	}
	if got := chooseSocket(map[string]string{"TERWAY_DAEMON_SOCKET": ""}, conf); got != "/conf.sock" {
		t.Fatalf("config should come next, got %s", got)
	}
	if got := chooseSocket(nil, parseNetconf([]byte(`{"daemon_socket": 7}`))); got != defaultSocket {
		t.Fatalf("a non-string daemon_socket is ignored, got %s", got)
	}
}

func TestTimeoutPrecedenceAndInvalidValues(t *testing.T) {
	conf := parseNetconf([]byte(`{"daemon_timeout": 2.5}`))
	cases := []struct {
		env  map[string]string
		conf netconf
		want float64
	}{
		{map[string]string{"TERWAY_DAEMON_TIMEOUT": "7", "CNI_COMMAND": "ADD"}, conf, 7},
		{map[string]string{"TERWAY_DAEMON_TIMEOUT": "0", "CNI_COMMAND": "ADD"}, conf, 2.5},
		{map[string]string{"TERWAY_DAEMON_TIMEOUT": "NaN"}, conf, 2.5},
		{map[string]string{"TERWAY_DAEMON_TIMEOUT": "601", "CNI_COMMAND": "CHECK"}, netconf{}, 10},
		{map[string]string{"CNI_COMMAND": "STATUS"}, parseNetconf([]byte(`{"daemon_timeout": -1}`)), 5},
		{map[string]string{"CNI_COMMAND": "VERSION"}, parseNetconf([]byte(`{"daemon_timeout": "3"}`)), 5},
		{map[string]string{"CNI_COMMAND": "BOGUS"}, netconf{}, 30},
	}
	for i, c := range cases {
		if got := chooseTimeout(c.env, c.conf); got != c.want {
			t.Errorf("case %d: got %v, want %v", i, got, c.want)
		}
	}
}

func TestDecodeReplyRejectsBrokenReplies(t *testing.T) {
	for _, line := range []string{
		`not json`,
		`{"protocol": 1, "exit": 0, "stdout": ""}`,
		`{"protocol": 2, "stdout": ""}`,
		`{"protocol": 2, "exit": 256, "stdout": ""}`,
		`{"protocol": 2, "exit": 1.5, "stdout": ""}`,
		`{"protocol": 2, "exit": 0, "stdout": 3}`,
	} {
		if _, err := decodeReply([]byte(line)); err == nil {
			t.Errorf("%s: accepted", line)
		}
	}
}

// fakeDaemon accepts one connection, records the request frame and any passed descriptors, and
// answers `answer` (nothing when empty).
func fakeDaemon(t *testing.T, answer string) (string, chan request, chan []int) {
	dir, err := os.MkdirTemp("", "shim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	requests, fds := make(chan request, 1), make(chan []int, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 1<<16), make([]byte, 64)
		n, oobn, _, _, _ := conn.ReadMsgUnix(buf, oob)
		fds <- parseRights(oob[:oobn])
		frame := buf[:n:n]
		if !bytes.HasSuffix(frame, []byte("\n")) {
			rest, _ := bufio.NewReader(conn).ReadBytes('\n')
			frame = append(frame, rest...)
		}
		var req request
		json.Unmarshal(frame, &req)
		requests <- req
		io.WriteString(conn, answer)
	}()
	return path, requests, fds
}

func parseRights(oob []byte) []int {
	msgs, _ := syscall.ParseSocketControlMessage(oob)
	var fds []int
	for _, m := range msgs {
		got, _ := syscall.ParseUnixRights(&m)
		fds = append(fds, got...)
	}
	return fds
}

// runShim runs the shim in-process with a short deadline, so a broken test fails fast.
func runShim(env []string, stdin string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(nil, append(env, "TERWAY_DAEMON_TIMEOUT=5"), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestForwardsRequestAndRelaysReply(t *testing.T) {
	path, requests, fds := fakeDaemon(t, `{"protocol":2,"exit":3,"stdout":"out\n","stderr":"err"}`+"\n")
	code, out, errOut := runShim([]string{"CNI_COMMAND=ADD", "TERWAY_DAEMON_SOCKET=" + path, "PATH=/x"}, `{"a":"<&>"}`)
	if code != 3 || out != "out\n" || errOut != "err" {
		t.Fatalf("got %d %q %q", code, out, errOut)
	}
	req := <-requests
	if req.Protocol != 2 || req.Stdin != `{"a":"<&>"}` || req.NetnsFD || req.Env["CNI_COMMAND"] != "ADD" || req.Env["PATH"] != "" {
		t.Fatalf("bad request %+v", req)
	}
	if got := <-fds; len(got) != 0 {
		t.Fatalf("no descriptor expected, got %v", got)
	}
}

func TestPassesNetnsDescriptor(t *testing.T) {
	netns, err := os.CreateTemp("", "netns")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(netns.Name())
	path, requests, fds := fakeDaemon(t, `{"protocol":2,"exit":0,"stdout":""}`+"\n")
	code, out, _ := runShim([]string{"CNI_NETNS=" + netns.Name(), "TERWAY_DAEMON_SOCKET=" + path}, "{}")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if req := <-requests; !req.NetnsFD {
		t.Fatal("netns_fd should be true")
	}
	got := <-fds
	if len(got) != 1 {
		t.Fatalf("want one descriptor, got %v", got)
	}
	defer syscall.Close(got[0])
	var a, b syscall.Stat_t
	syscall.Fstat(got[0], &a)
	syscall.Stat(netns.Name(), &b)
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Fatal("the descriptor is not the netns file")
	}
}

func decodeError(t *testing.T, out string) cniError {
	var e cniError
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("not a CNI error object: %q", out)
	}
	return e
}

func TestDaemonNotRunning(t *testing.T) {
	code, out, _ := runShim([]string{"TERWAY_DAEMON_SOCKET=/nonexistent/d.sock"}, `{"cniVersion":"0.4.0"}`)
	e := decodeError(t, out)
	if code != 1 || e.Code != 11 || e.CNIVersion != "0.4.0" || !strings.Contains(e.Msg, "/nonexistent/d.sock") {
		t.Fatalf("got %d %+v", code, e)
	}
}

func TestBrokenReply(t *testing.T) {
	path, _, _ := fakeDaemon(t, "garbage\n")
	code, out, _ := runShim([]string{"TERWAY_DAEMON_SOCKET=" + path}, "not json")
	e := decodeError(t, out)
	if code != 1 || e.Code != 5 || e.CNIVersion != "1.1.0" {
		t.Fatalf("got %d %+v", code, e)
	}
}

// countingReader is an endless stdin that counts what the shim reads from it.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += len(p)
	return len(p), nil
}

func TestRefusesOversizedStdinWithoutReadingItAll(t *testing.T) {
	stdin := &countingReader{}
	var out bytes.Buffer
	code := run(nil, []string{"TERWAY_DAEMON_SOCKET=/nonexistent/d.sock"}, stdin, &out, io.Discard)
	e := decodeError(t, out.String())
	if code != 1 || e.Code != 6 || stdin.n > 2*maxStdin {
		t.Fatalf("got %d %+v after reading %d bytes", code, e, stdin.n)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, nil, strings.NewReader(""), &out, io.Discard); code != 0 {
		t.Fatal(code)
	}
	if out.String() != "terway CNI shim dev (protocol 2)\n" {
		t.Fatalf("got %q", out.String())
	}
}

func TestRefusesOversizedRequestFrame(t *testing.T) {
	huge := "TERWAY_HUGE=" + strings.Repeat("x", maxFrame)
	code, out, _ := runShim([]string{huge, "TERWAY_DAEMON_SOCKET=/nonexistent/d.sock"}, "{}")
	e := decodeError(t, out)
	if code != 1 || e.Code != 6 || !strings.Contains(e.Msg, "8388608") {
		t.Fatalf("got %d %+v", code, e)
	}
}
