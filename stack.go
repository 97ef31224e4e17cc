package acomm

// decodeStack is how much stack growStack makes sure of: with the guard
// the runtime keeps below a stack (928 bytes on linux/amd64, twice that
// under -race) and the frames above its caller, it takes a new
// goroutine's 2 KiB stack to the 4 KiB that decoding a frame reaches, and
// no further.
const decodeStack = 2 << 10

// growStack grows the stack of the goroutine that calls it, while that
// stack holds few frames, to what decoding a frame needs. A goroutine
// starts with a small stack, 2 KiB here (the runtime may start them
// larger, from the average stack it scanned at the last GC: then
// growStack finds room and grows nothing), which the runtime copies to
// one twice as large the first time a call would overrun it; the copy
// walks and adjusts every frame on the stack, so it costs more the
// deeper it happens. A new goroutine that decodes a frame, as each
// connection's goroutine does (an original-style service's
// UnmarshalConnData, a receiver's serveFrames), overran it inside the
// JSON decoder's Reset, nine frames deep: the CPU profile of
// BenchmarkEcho/acomm-seed-oneshot (bench/) had 3.0-3.5 us a cycle in
// runtime.newstack there, 0.75 us with growStack called first, and
// callgrind counts 149.7k instructions a cycle before, 141.5k after
// (BenchmarkDecodeRequestFresh, by itself: 26.0k instructions a decode as
// it comes, 22.3k grown first). On a goroutine whose stack is large
// already, it costs the clearing of decodeStack bytes.
//
//go:noinline
func growStack() {
	var room [decodeStack]byte
	keepStack(room[:])
}

// keepStack is where growStack's room goes, so that the compiler keeps it
// on the stack.
//
//go:noinline
func keepStack([]byte) {}
