package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// encodeBody is a valid /v1/encode body for the fake model.
var encodeBody = jsonImages(1, 784, func(i, j int) string { return "0" })

func encodeRequest() request {
	return request{method: "POST", target: "/v1/encode", contentType: "application/json", body: encodeBody}
}

// waitFor polls cond every millisecond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueueFull(t *testing.T) {
	f := &fakeModel{b: 4, started: make(chan struct{}, 10), release: make(chan struct{})}
	s := newServer(t, f, Config{MaxInFlight: 1, MaxQueue: 1, MaxWait: 10 * time.Second})
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { codes <- do(s.Handler(), encodeRequest()).Code }()
	}
	<-f.started // one runs...
	waitFor(t, "the second request to wait", func() bool { return s.admitted.Load() == 2 })
	// ...one waits, and a third finds the queue full.
	w := do(s.Handler(), encodeRequest())
	msg := checkError(t, w, http.StatusServiceUnavailable)
	if w.Header().Get("Retry-After") != "1" || !strings.Contains(msg, "busy") {
		t.Errorf("Retry-After %q, message %q", w.Header().Get("Retry-After"), msg)
	}
	// Requests that need no inference still pass.
	if w := do(s.Handler(), request{method: "GET", target: "/healthz"}); w.Code != 200 {
		t.Errorf("healthz while busy: %d", w.Code)
	}
	close(f.release)
	for i := 0; i < 2; i++ {
		if c := <-codes; c != 200 {
			t.Errorf("queued request: %d, want 200", c)
		}
	}
	if n := s.admitted.Load(); n != 0 {
		t.Errorf("%d requests still admitted", n)
	}
}

func TestWaitBounded(t *testing.T) {
	f := &fakeModel{b: 4, started: make(chan struct{}, 10), release: make(chan struct{})}
	s := newServer(t, f, Config{MaxInFlight: 1, MaxQueue: 8, MaxWait: 30 * time.Millisecond})
	done := make(chan int)
	go func() { done <- do(s.Handler(), encodeRequest()).Code }()
	<-f.started
	start := time.Now()
	for _, r := range []request{
		encodeRequest(),
		{method: "POST", target: "/v1/decode", contentType: "application/json", body: `{"codes": [[0,0,0,0]]}`},
		{method: "POST", target: "/v1/sample", contentType: "application/json", body: `{"n": 1}`},
	} {
		w := do(s.Handler(), r)
		msg := checkError(t, w, http.StatusServiceUnavailable)
		if w.Header().Get("Retry-After") == "" || !strings.Contains(msg, "no inference slot") {
			t.Errorf("%s: Retry-After %q, message %q", r.target, w.Header().Get("Retry-After"), msg)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("three bounded waits took %v", d)
	}
	close(f.release)
	if c := <-done; c != 200 {
		t.Errorf("first request: %d", c)
	}
}

func TestRequestTimeout(t *testing.T) {
	f := &fakeModel{b: 4, started: make(chan struct{}, 10), release: make(chan struct{})}
	s := newServer(t, f, Config{MaxInFlight: 1, RequestTimeout: 50 * time.Millisecond})
	w := do(s.Handler(), encodeRequest())
	msg := checkError(t, w, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "timed out") {
		t.Errorf("message %q", msg)
	}
	<-f.started
	// The call still holds its slot until the model returns.
	if n := len(s.slots); n != 1 {
		t.Errorf("%d slots held after the timeout, want 1", n)
	}
	close(f.release)
	s.work.Wait()
	if n := len(s.slots); n != 0 {
		t.Errorf("%d slots held after the call ended", n)
	}
}

func TestPanicIs500(t *testing.T) {
	var logs bytes.Buffer
	s := newServer(t, &fakeModel{b: 4, panics: true}, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	w := do(s.Handler(), encodeRequest())
	checkError(t, w, http.StatusInternalServerError)
	if len(s.slots) != 0 {
		t.Errorf("a panicking call kept its slot")
	}
	if !strings.Contains(logs.String(), "fake model panics") {
		t.Errorf("the panic is not logged: %s", logs.String())
	}
	// A panic outside inference is caught too.
	h := s.logged(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler bug") }))
	checkError(t, do(h, request{method: "GET", target: "/"}), http.StatusInternalServerError)
	if !strings.Contains(logs.String(), "handler bug") {
		t.Errorf("the handler's panic is not logged")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRequestLog(t *testing.T) {
	var logs syncBuffer
	s := newServer(t, &fakeModel{b: 4}, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	do(s.Handler(), request{method: "GET", target: "/healthz"})
	do(s.Handler(), request{method: "POST", target: "/v1/encode", body: "{}"})
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	want := []struct {
		method, path string
		status       float64
	}{{"GET", "/healthz", 200}, {"POST", "/v1/encode", 415}}
	if len(lines) != len(want) {
		t.Fatalf("%d request lines, want %d: %s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		l := lines[i]
		if l["method"] != w.method || l["path"] != w.path || l["status"] != w.status || l["duration"] == nil {
			t.Errorf("log line %v, want %s %s %v with a duration", l, w.method, w.path, w.status)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	f := &fakeModel{b: 4, started: make(chan struct{}, 10), release: make(chan struct{})}
	s := newServer(t, f, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	// A request in progress when the shutdown begins...
	type result struct {
		status int
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		res, err := http.Post(url+"/v1/encode", "application/json", strings.NewReader(encodeBody))
		if err != nil {
			slow <- result{err: err}
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		slow <- result{status: res.StatusCode}
	}()
	<-f.started
	cancel()
	// ...new connections are refused...
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v before the request in progress ended", err)
	default:
	}
	// ...and the one in progress completes.
	close(f.release)
	if r := <-slow; r.err != nil || r.status != 200 {
		t.Errorf("request in progress: %d %v, want 200", r.status, r.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the shutdown")
	}
}

func TestShutdownTimeout(t *testing.T) {
	f := &fakeModel{b: 4, started: make(chan struct{}, 10), release: make(chan struct{})}
	s := newServer(t, f, Config{ShutdownTimeout: 50 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	go http.Post("http://"+ln.Addr().String()+"/v1/encode", "application/json", strings.NewReader(encodeBody))
	<-f.started
	cancel()
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "shutdown") {
			t.Errorf("Serve: %v, want a shutdown error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not give up after its shutdown timeout")
	}
	close(f.release)
	s.work.Wait()
}

func TestServeListenerError(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(context.Background(), ln); err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve on a closed listener: %v, want an error", err)
	}
}

// TestSlowBody checks the server's read timeout: a client that stops
// sending its body gets 408 or loses its connection, and never holds an
// inference slot.
func TestSlowBody(t *testing.T) {
	s := newServer(t, &fakeModel{b: 4}, Config{ReadTimeout: 100 * time.Millisecond})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ReadTimeout = s.cfg.ReadTimeout
	ts.Start()
	defer ts.Close()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"images\": [[")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if len(b) > 0 && !strings.Contains(string(b), "408") {
		t.Errorf("answer to a stalled body: %.200s", b)
	}
	if len(s.slots) != 0 {
		t.Errorf("a stalled body holds an inference slot")
	}
}
