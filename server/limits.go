package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of the public listener's memory bounds (README, "Memory
// bounds"). With them, requests can hold about 3 × 64 MiB at worst, well
// inside the Kubernetes manifest's 512 MiB beside a large rule set.
const (
	DefaultMaxRequestBytes      = 4 << 20
	DefaultMaxInflightBytes     = 64 << 20
	DefaultMaxConcurrentStreams = 128
)

// healthCalls is how many health requests may be received at once, each
// reserving --max-request-bytes from a budget of their own: a probe or a
// load balancer's check takes microseconds to receive, so a few suffice,
// and health answers while large requests fill --max-inflight-bytes.
const healthCalls = 4

// requestBudget bounds the bytes of requests in flight across the process
// (--max-inflight-bytes). gRPC reads a whole request message before any
// handler sees its size, so a call reserves the largest message allowed
// (--max-request-bytes) while its request is received, then holds the
// request's actual size until it returns. A call that cannot reserve
// waits for a release up to budgetWait, then is refused: memory stays
// bounded however many callers arrive, since a waiting call has read
// nothing.
type requestBudget struct {
	limit, perCall int64
	wait           time.Duration // budgetWait, but in tests
	used           atomic.Int64
	waiting        atomic.Int32 // calls in reserveWaiting
	mu             sync.Mutex
	freed          chan struct{} // closed by a release while calls wait
}

// budgetWait is how long a call waits for the budget. Small calls hold
// their reservation for microseconds, but a burst of them can still meet
// the bound (50 health checks at once on a closed loop did, against a
// budget of healthCalls), and should wait that out; requests that fill the
// budget for longer are still refused well within any caller's patience.
const budgetWait = 50 * time.Millisecond

func newRequestBudget(limit, perCall int64) *requestBudget {
	return &requestBudget{limit: limit, perCall: perCall, wait: budgetWait}
}

var errOverBudget = status.Error(codes.ResourceExhausted,
	"server busy: the requests in flight hold --max-inflight-bytes; retry with backoff, or send smaller batches")

// reserve takes n bytes from the budget, or reports false if that would
// exceed it.
func (b *requestBudget) reserve(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// reserveWaiting is reserve, waiting for releases up to b.wait or until
// ctx ends.
func (b *requestBudget) reserveWaiting(ctx context.Context, n int64) bool {
	if b.reserve(n) {
		return true
	}
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	for {
		// The channel is taken before trying again, so a release between
		// the try and the wait still wakes this call.
		b.mu.Lock()
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed := b.freed
		b.mu.Unlock()
		if b.reserve(n) {
			return true
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release returns n bytes to the budget and wakes the calls waiting for
// it; a nil budget bounds nothing.
func (b *requestBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.used.Add(-n)
	if b.waiting.Load() > 0 {
		b.mu.Lock()
		if b.freed != nil {
			close(b.freed)
			b.freed = nil
		}
		b.mu.Unlock()
	}
}

// receive receives one request with recv (see recvRequest) within the
// budget, if there is one. It returns the bytes the call now holds, to
// release when the call ends.
func (b *requestBudget) receive(ctx context.Context, recv func(any) error, m any) (held int64, err error) {
	if b == nil {
		_, err = recvRequest(recv, m)
		return 0, err
	}
	if !b.reserveWaiting(ctx, b.perCall) {
		return 0, errOverBudget
	}
	size, err := recvRequest(recv, m)
	size = min(size, b.perCall)
	b.release(b.perCall - size)
	return size, err
}

// byteSize is a flag value in bytes, written as a number with an optional
// KiB, MiB or GiB suffix ("4MiB").
type byteSize int64

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}, {"", 0}}

func (s *byteSize) Set(v string) error {
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(v, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<62)>>u.shift {
			break
		}
		*s = byteSize(n << u.shift)
		return nil
	}
	return fmt.Errorf("%q is not a size; accepted: a number of bytes with an optional KiB, MiB or GiB suffix, such as 4MiB", v)
}

func (s byteSize) String() string {
	for _, u := range byteUnits[:3] {
		if s != 0 && s%(1<<u.shift) == 0 {
			return strconv.FormatInt(int64(s)>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}
