// Package modelcheck loads and warms up a model version in a short-lived
// child process of the same binary before the serving process loads it.
//
// A signed package is still data: a model file with a few bytes changed
// can make libtesseract abort the process, divide by zero on the first
// page, allocate gigabytes or loop for ever, and ONNX Runtime can be made
// to allocate as much. None of that may reach the server. Runner (a
// modelrepo.Checker) starts the child (`visionserve model check --child`,
// or a test binary that re-executes itself), hands it the verified package
// on stdin and reads its progress on file descriptor 3; the child limits
// its own memory (RLIMIT_DATA) and priority before it touches a model byte,
// loads the version with the same loaders as the server (one engine), warms
// it up and reports. The parent kills the child's whole process group when
// the timeout passes, and turns a crash, a hang or an exhausted memory
// limit into a modelrepo.Error with the phase it happened in.
//
// The package never loads a model itself: the child side (Serve) is given
// the loaders by its caller (internal/app), so it imports no engine.
package modelcheck
