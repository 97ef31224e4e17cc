package acomm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Cancellation crosses the wire as a notice: a request frame for the
// reserved task "acomm.cancel" whose args are {"id": "<request id>"}.
// A tracker sends it when it stops waiting for a request that it sent
// with Call or MultiRequest.SendAll (the caller's context ended, the
// request timed out, it was removed, or the tracker was shut down), and
// only to a peer whose acknowledgements advertised the "cancel" feature,
// so original peers never see one. The notice's response hook is the
// cancelled request's own: only the request's owner may cancel it, and a
// receiver matches a notice to a request by id and hook (see
// Server.cancelNotice and the bridge's serveCancel). The receiver
// acknowledges the notice and sends no response; a Server cancels the
// context of the handler running the request. The handler's eventual
// answer is sent as usual and dropped by the tracker, which no longer
// tracks the request.

// CancelTask is the reserved task of the cancel notice, whose args are
// {"id": "<id of the request to cancel>"} and whose response hook must be
// that request's own: a notice cancels only the request with both.
const CancelTask = "acomm.cancel"

// featureCancel is the feature a receiver advertises in its
// acknowledgements when it understands the cancel notice.
const featureCancel = "cancel"

// cancelArgs are the args of the cancel notice.
type cancelArgs struct {
	ID string `json:"id"`
}

// errCancelledByCaller is the error a Server answers a request with when
// its caller cancelled it.
var errCancelledByCaller = fmt.Errorf("acomm: cancelled by the caller: %w", context.Canceled)

// cancelNoticeTimeout bounds the sending of one cancel notice: it only
// saves the service work, so a peer that is slow to take it is not waited
// for long (Shutdown waits for the notices under way).
const cancelNoticeTimeout = 2 * time.Second

// maxCancelsInFlight bounds the cancel notices a tracker sends at once;
// beyond it a notice waits its turn, cancelNoticeTimeout at most.
const maxCancelsInFlight = 64

// notifyCancel tells the service that tr was sent to, if it takes cancel
// notices, that its caller no longer waits: if its acknowledgement of tr
// said so, or, when that has not been read (the caller gave up first, or
// the request timed out first), if its latest acknowledgement did. (A
// notice that overtakes its request keeps it from running.) It sends from
// a goroutine of its own, bounded by maxCancelsInFlight. The caller must
// hold tr's count in t.pending, so that Shutdown waits for the goroutine.
func (t *Tracker) notifyCancel(tr *trackedRequest) {
	dest := tr.dest
	if dest == nil || tr.async != nil && tr.async.deferNotice() {
		return
	}
	if !tr.cancels && !t.peerHas(dest, featureCancel) || !t.firstNotice(tr.req.ID) {
		return
	}
	hook := tr.req.ResponseHook
	if tr.forwardTo != nil {
		hook = t.hook // a proxied request goes out with the tracker's socket (ProxyUnix)
	}
	t.bg.Add(1)
	go func() {
		defer t.bg.Done()
		if t.takeCancelSlot(tr.req.ID) {
			t.cancelWithSlot(dest, tr.req.ID, hook)
		}
	}()
}

// firstNotice reports whether the request id is to be sent a cancel
// notice: false when it was sent one already (a Call that ends as its
// first acknowledgement is read may reach both ways of sending it: its
// removal, and its send's goroutine).
func (t *Tracker) firstNotice(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, dup := t.noticed.set[id]
	t.noticed.add(id)
	return !dup
}

// takeCancelSlot takes one of the maxCancelsInFlight slots for the notice
// cancelling the request id, counting it. When none is free it waits for
// one, cancelNoticeTimeout at most: a notice is not dropped because many
// callers gave up at once. False when the wait ran out (the notice is
// dropped then, and logged).
func (t *Tracker) takeCancelSlot(id string) bool {
	select {
	case t.cancels <- struct{}{}:
	default:
		wait := time.NewTimer(cancelNoticeTimeout)
		defer wait.Stop()
		select {
		case t.cancels <- struct{}{}:
		case <-wait.C:
			t.log().WithField("id", id).Warn("too many cancel notices in flight; dropped one")
			return false
		}
	}
	t.stats.cancelNotices.Add(1)
	return true
}

// cancelWithSlot sends the notice cancelling the request id, whose
// response hook was reqHook, to dest, then gives back the slot taken for
// it.
func (t *Tracker) cancelWithSlot(dest *url.URL, id string, reqHook *url.URL) {
	defer func() { <-t.cancels }()
	if err := t.sendCancel(dest, id, reqHook); err != nil {
		t.log().WithError(err).WithFields(logrus.Fields{"id": id, "dest": dest.Redacted()}).
			Debug("sending cancel notice failed")
	}
}

// postCall starts sending req, tracked by Call, to dest. To a peer not
// known to take cancel notices (not heard from yet, or an original peer)
// the send runs on a goroutine of its own, not bound to ctx, its outcome
// coming on the returned channel: a Call that ends before the
// acknowledgement is read (its caller gave up, or the request timed out)
// does not cut the exchange short, and the notice, if one is due, waits
// for the acknowledgement to tell whether the peer takes it (see
// callSend). The send is bounded by the I/O timeout, and by
// cancelNoticeTimeout once Call has left. The *callSend is nil for a send
// bound to ctx.
func (t *Tracker) postCall(ctx context.Context, dest *url.URL, req *Request) (pending, *callSend, error) {
	if t.peerHas(dest, featureCancel) {
		p, err := post(ctx, dest, req, &t.cfg)
		return p, nil, err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &callSend{ack: outcome{done: make(chan struct{})}, stop: stop}
	t.mu.Lock()
	if tr := t.requests[req.ID]; tr != nil {
		tr.async = s // read by notifyCancel after take, under t.mu
	}
	t.mu.Unlock()
	t.bg.Add(1) // req is tracked: Stop has not reached t.bg.Wait
	go func() {
		defer t.bg.Done()
		defer stop()
		err := ctx.Err() // the caller gave up before anything was sent
		if err == nil {
			err = sendMsg(sctx, dest, req, &t.cfg)
		}
		s.mu.Lock()
		s.done = true
		left, notify := s.left, s.notify
		s.mu.Unlock()
		if !left {
			s.ack.set(err)
		}
		if notify && err == nil && t.peerHas(dest, featureCancel) && t.firstNotice(req.ID) && t.takeCancelSlot(req.ID) {
			t.cancelWithSlot(dest, req.ID, req.ResponseHook)
		}
	}()
	return pending{out: &s.ack}, s, nil
}

// callSend is a send of postCall's that runs on its own goroutine. While
// it awaits the acknowledgement, a notice due for its request (the caller
// gave up, the request timed out or was removed) is left to it: it sends
// the notice once the acknowledgement is in, if the peer takes notices.
// So a notice follows a request whether or not the peer was known when it
// was sent, and only once.
type callSend struct {
	ack  outcome            // its outcome, while Call waits for it
	stop context.CancelFunc // cuts it short

	mu     sync.Mutex // protects the fields below
	done   bool       // the outcome is in
	left   bool       // Call returned before it
	notify bool       // a notice is due, if the acknowledgement lists "cancel"
}

// deferNotice leaves the notice due for the request to the send, and
// reports whether it did: false once the outcome is in.
func (s *callSend) deferNotice() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.notify = true
	return true
}

// leave records that Call returns; a send still under way gets
// cancelNoticeTimeout more.
func (s *callSend) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.left {
		return
	}
	s.left = true
	time.AfterFunc(cancelNoticeTimeout, s.stop)
}

// sendCancel sends the cancel notice for the request id, whose response
// hook was reqHook, to dest. The notice carries the request's own hook,
// which a receiver asks of a cancel so that only the request's owner may
// cancel it (a hook of Call's for a bridge carries the request's
// capability).
func (t *Tracker) sendCancel(dest *url.URL, id string, reqHook *url.URL) error {
	args, err := json.Marshal(cancelArgs{ID: id})
	if err != nil {
		return err
	}
	raw := json.RawMessage(args)
	hook := reqHook
	if hook == nil {
		hook = t.hook
	}
	notice := &Request{ID: newID(), Task: CancelTask, ResponseHook: hook, Args: &raw, LegacyURLs: t.cfg.legacyURLs}
	ctx, cancel := context.WithTimeout(context.Background(), min(cancelNoticeTimeout, t.cfg.ioTimeout))
	defer cancel()
	return sendMsg(ctx, dest, notice, &t.cfg)
}

// peerHas reports whether the receiver at dest listed feature in its
// latest acknowledgement.
func (t *Tracker) peerHas(dest *url.URL, feature string) bool {
	return slices.Contains(featuresOf(dest), feature)
}

// httpFeatures are the features that http(s) receivers (bridges) listed in
// their latest acknowledgements, by httpPeerKey. Unix receivers' are kept
// by their links (see peerFeatures).
var httpFeatures struct {
	sync.Mutex
	m map[string][]string
}

// maxHTTPPeers bounds httpFeatures: past it, it starts afresh (a peer
// forgotten is only not sent cancel notices until its next ack).
const maxHTTPPeers = 256

// httpPeerKey identifies an http(s) receiver: its scheme, host and path,
// without the credentials or query a URL may carry.
func httpPeerKey(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// noteHTTPFeatures records the features that the receiver at addr listed
// in an acknowledgement.
func noteHTTPFeatures(addr *url.URL, features []string) {
	k := httpPeerKey(addr)
	httpFeatures.Lock()
	defer httpFeatures.Unlock()
	if len(features) == 0 {
		delete(httpFeatures.m, k)
		return
	}
	if httpFeatures.m == nil || len(httpFeatures.m) >= maxHTTPPeers {
		httpFeatures.m = make(map[string][]string)
	}
	httpFeatures.m[k] = features
}

// sending records that the tracked request with id is being sent to
// dest, so that a cancel notice can follow it there.
func (t *Tracker) sending(id string, dest *url.URL) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.requests[id]; ok {
		tr.dest = dest
	}
}

// sentTo records that dest acknowledged the tracked request with id, once
// the send succeeded: if the acknowledgement listed "cancel", a notice
// will follow the request there even if the link that learnt it is closed
// by then.
func (t *Tracker) sentTo(id string, dest *url.URL) {
	if !t.peerHas(dest, featureCancel) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.requests[id]; ok {
		tr.dest, tr.cancels = dest, true
	}
}

// notSent records that the tracked request with id did not reach the
// peer it was being sent to, or was refused there: no notice follows it,
// which would only make the peer refuse the request if it is sent again.
func (t *Tracker) notSent(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.requests[id]; ok {
		tr.dest, tr.cancels = nil, false
	}
}

// mayBeDelivered reports whether a send that failed with err may have
// delivered its frame all the same: the connection failed, or the
// sender's context ended, before the acknowledgement was read.
func mayBeDelivered(err error) bool {
	if errors.Is(err, ErrNotDelivered) {
		return false
	}
	return errors.Is(err, ErrConnection) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// cancelNotice handles an acomm.cancel notice: it cancels the handler of
// the request it names, or, when that request has not arrived yet,
// remembers that it is cancelled. Only the request's owner may cancel it:
// the notice must carry the request's response hook as well as its id,
// and cancels only the request (or, early, the one to come) with both. A
// notice that matches nothing is acknowledged all the same, telling
// nobody which ids are in flight.
func (s *Server) cancelNotice(notice *Request) error {
	var args cancelArgs
	if err := notice.UnmarshalArgs(&args); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidRequest, CancelTask, err)
	}
	if args.ID == "" {
		return fmt.Errorf("%w: %s: missing id in args", ErrInvalidRequest, CancelTask)
	}
	if notice.ResponseHook == nil {
		return nil // no owner named: it matches no request
	}
	owner := notice.ResponseHook.String()
	var matched []*job
	s.mu.Lock()
	for j := s.byID[args.ID]; j != nil; j = j.sameID {
		if j.req.ResponseHook.String() == owner {
			matched = append(matched, j)
		}
	}
	if matched == nil && s.state == serverRunning {
		s.early.add(earlyKey(args.ID, owner))
	}
	s.mu.Unlock()
	for _, j := range matched {
		if j.byCaller.CompareAndSwap(false, true) {
			s.stats.cancelled.Add(1)
			j.ctx.end()
		}
	}
	return nil
}

// earlyKey is the key in a Server's early notices of the request with id
// whose response hook is owner: a hash, seeded at random for the process,
// so that a notice's id and hook, a peer's text of any length up to a
// frame's, are not kept (1024 notices of 64 MiB each would be).
func earlyKey(id, owner string) uint64 {
	var h maphash.Hash
	h.SetSeed(earlySeed)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(id)))
	_, _ = h.Write(n[:])
	_, _ = h.WriteString(id)
	_, _ = h.WriteString(owner)
	return h.Sum64()
}

// earlySeed seeds earlyKey.
var earlySeed = maphash.MakeSeed()

// contextError returns the error to answer a request with when its
// handler returned err after ctx, the handler's context, ended.
func (s *Server) contextError(ctx context.Context, j *job, err error) error {
	switch {
	case s.ctx.Err() != nil:
		if errors.Is(err, ErrServerStopped) {
			return err
		}
		return fmt.Errorf("%w: task %q: %w", ErrServerStopped, j.req.Task, err)
	case j.byCaller.Load():
		return fmt.Errorf("%w: task %q: %w", errCancelledByCaller, j.req.Task, err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w: task %q ran past its caller's deadline: %w", ErrTimeout, j.req.Task, err)
	}
	return err
}

// earlyCancels is how many cancel notices for requests not (yet) running
// a Server remembers.
const earlyCancels = 1024

// idRing is a bounded set of keys that forgets the oldest first.
type idRing[K comparable] struct {
	keys []K
	next int
	set  map[K]int // the keys in the set, to the slot of keys holding them
}

// add adds k, forgetting the oldest key when full.
func (r *idRing[K]) add(k K) {
	if r.set == nil {
		r.set = make(map[K]int)
	}
	if _, ok := r.set[k]; ok {
		return
	}
	if len(r.keys) < earlyCancels {
		r.set[k] = len(r.keys)
		r.keys = append(r.keys, k)
		return
	}
	// The slot's key is forgotten unless it was taken, then added again
	// to another slot since.
	if old := r.keys[r.next]; r.set[old] == r.next {
		delete(r.set, old)
	}
	r.keys[r.next], r.set[k] = k, r.next
	r.next = (r.next + 1) % earlyCancels
}

// take reports whether k is in the set, and removes it.
func (r *idRing[K]) take(k K) bool {
	if _, ok := r.set[k]; !ok {
		return false
	}
	delete(r.set, k)
	return true
}
