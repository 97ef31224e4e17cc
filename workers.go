package acomm

import "sync"

// maxIdleWorkers is how many finished workers a workerPool keeps waiting
// for more work.
const maxIdleWorkers = 64

// workerPool runs funcs on goroutines that, once done, wait for the next
// func instead of exiting: a handler then starts on a goroutine whose
// stack has already grown to what handling and answering take, instead of
// growing (copying) a fresh 8 KiB stack several times per request.
type workerPool struct {
	work chan func() // unbuffered: a send succeeds only to a waiting worker
	stop chan struct{}
	wg   sync.WaitGroup // the waiting workers

	mu     sync.Mutex // protects the fields below
	idle   int        // workers waiting
	closed bool
}

func newWorkerPool() *workerPool {
	return &workerPool{work: make(chan func()), stop: make(chan struct{})}
}

// run runs f on a waiting worker, or on a new goroutine, which then waits
// for more until the pool is closed. As with go f(), nothing waits for f.
func (p *workerPool) run(f func()) {
	select {
	case p.work <- f:
	default:
		go p.worker(f)
	}
}

// worker runs f, then the funcs handed to it, until the pool is closed or
// enough workers are waiting already.
func (p *workerPool) worker(f func()) {
	for {
		f()
		p.mu.Lock()
		if p.closed || p.idle >= maxIdleWorkers {
			p.mu.Unlock()
			return
		}
		p.idle++
		p.wg.Add(1)
		p.mu.Unlock()
		f = nil
		select {
		case f = <-p.work:
		case <-p.stop:
		}
		p.mu.Lock()
		p.idle--
		p.mu.Unlock()
		p.wg.Done()
		if f == nil {
			return
		}
	}
}

// close ends the waiting workers and waits for them to exit; a worker
// still running a func exits once it returns.
func (p *workerPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
