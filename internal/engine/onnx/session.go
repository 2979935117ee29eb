package onnx

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/visionserve/visionserve/internal/engine"
)

// Interface guards.
var (
	_ engine.TensorRunner = (*Session)(nil)
	_ engine.TensorRunner = (*Pool)(nil)
)

// Errors callers branch on.
var (
	// ErrInvalidInput wraps every mismatch between the tensors handed to
	// Run and the model's inputs (count, dtype, rank, fixed dimensions,
	// data length). Transports map it to a client error.
	ErrInvalidInput = errors.New("invalid input tensor")
	// ErrClosed is returned when a closed session is used (a closed Pool
	// returns engine.ErrPoolClosed).
	ErrClosed = errors.New("onnx: closed")
	// ErrConcurrentUse is returned when a Session is used by a second
	// goroutine while a call is in progress; use a Pool to share sessions.
	ErrConcurrentUse = errors.New("onnx: session used by two goroutines at once")
)

// Options are the per-model runtime settings. They are JSON-tagged so they
// can live in a model package manifest's runtime options; decode over
// DefaultOptions so that absent fields keep their defaults.
type Options struct {
	// IntraOpThreads is the number of threads one session uses inside an
	// operator. The default 1 lets a pool of sessions spread over the cores
	// instead of every session's thread pool fighting for all of them.
	IntraOpThreads int `json:"intra_op_threads"`
	// InterOpThreads is the number of threads that run independent graph
	// nodes in parallel. Above 1 the session switches to ORT's parallel
	// execution mode; 1 keeps the sequential executor.
	InterOpThreads int `json:"inter_op_threads"`
	// Sessions is the pool size: how many requests can run the model at
	// once. Each session holds its own copy of the weights.
	Sessions int `json:"sessions"`
}

// DefaultOptions returns one single-threaded session per schedulable CPU.
func DefaultOptions() Options {
	return Options{IntraOpThreads: 1, InterOpThreads: 1, Sessions: runtime.GOMAXPROCS(0)}
}

// Validate reports settings ONNX Runtime would reject or misread. Zero is
// rejected rather than passed through, because ORT reads 0 threads as "all
// cores", which oversubscribes a pool.
func (o Options) Validate() error {
	var errs []error
	if o.IntraOpThreads < 1 {
		errs = append(errs, fmt.Errorf("intra_op_threads must be at least 1, got %d", o.IntraOpThreads))
	}
	if o.InterOpThreads < 1 {
		errs = append(errs, fmt.Errorf("inter_op_threads must be at least 1, got %d", o.InterOpThreads))
	}
	if o.Sessions < 1 {
		errs = append(errs, fmt.Errorf("sessions must be at least 1, got %d", o.Sessions))
	}
	return errors.Join(errs...)
}

// Session is one ONNX Runtime inference session. It is not safe for
// concurrent use (a second concurrent Run fails with ErrConcurrentUse); a
// Pool hands sessions to one goroutine at a time.
type Session struct {
	sess    *ort.DynamicAdvancedSession
	run     *ort.RunOptions
	inputs  []engine.TensorInfo
	outputs []engine.TensorInfo
	busy    atomic.Bool
	closed  bool // guarded by busy
	// beforeRun, when set by tests, is called just before ORT runs.
	beforeRun func()
}

// ModelInfo reads the input and output metadata of an ONNX model (names,
// dtypes, shapes with -1 for dynamic dimensions). It loads the model into a
// temporary session, so it costs about as much as NewSession.
func ModelInfo(model []byte) (inputs, outputs []engine.TensorInfo, err error) {
	if !initialized() {
		return nil, nil, ErrNotInitialized
	}
	in, out, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: read model metadata: %w", err)
	}
	if inputs, err = tensorInfos("input", in); err != nil {
		return nil, nil, err
	}
	if outputs, err = tensorInfos("output", out); err != nil {
		return nil, nil, err
	}
	return inputs, outputs, nil
}

func tensorInfos(kind string, infos []ort.InputOutputInfo) ([]engine.TensorInfo, error) {
	out := make([]engine.TensorInfo, len(infos))
	for i, in := range infos {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("onnx: %s %q is a %s; only tensors are supported", kind, in.Name, in.OrtValueType)
		}
		dt, ok := fromElementType(in.DataType)
		if !ok {
			return nil, fmt.Errorf("onnx: %s %q has unsupported element type %s", kind, in.Name, in.DataType)
		}
		info := engine.TensorInfo{Name: in.Name, DType: dt, Shape: slices.Clone([]int64(in.Dimensions))}
		// onnxruntime_go v1.27 copies only half the bytes of an FP16
		// output it allocates, so only outputs we can allocate ourselves
		// (static shapes) work.
		if kind == "output" && dt == engine.FP16 && !static(info.Shape) {
			return nil, fmt.Errorf("onnx: output %q is FP16 with dynamic shape %v, which onnxruntime_go v1.27 cannot return", in.Name, info.Shape)
		}
		out[i] = info
	}
	return out, nil
}

func static(shape []int64) bool {
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// NewSession loads model (the bytes of an .onnx file, already verified by
// the caller) into a session configured by opts (Sessions is ignored).
func NewSession(model []byte, opts Options) (*Session, error) {
	in, out, err := ModelInfo(model)
	if err != nil {
		return nil, err
	}
	return newSession(model, opts, in, out)
}

func newSession(model []byte, opts Options, inputs, outputs []engine.TensorInfo) (s *Session, err error) {
	if !initialized() {
		return nil, ErrNotInitialized
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer so.Destroy()
	if err := configure(so, opts); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}

	s = &Session{inputs: inputs, outputs: outputs}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.run, err = ort.NewRunOptions(); err != nil {
		return s, fmt.Errorf("onnx: run options: %w", err)
	}
	s.sess, err = ort.NewDynamicAdvancedSessionWithONNXData(model, names(inputs), names(outputs), so)
	if err != nil {
		return s, fmt.Errorf("onnx: create session: %w", err)
	}
	return s, nil
}

func configure(so *ort.SessionOptions, opts Options) error {
	if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
		return err
	}
	if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
		return err
	}
	if opts.InterOpThreads > 1 {
		return so.SetExecutionMode(ort.ExecutionModeParallel)
	}
	return nil
}

func names(infos []engine.TensorInfo) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// Inputs describes the model's inputs in the order Run expects them.
func (s *Session) Inputs() []engine.TensorInfo { return s.inputs }

// Outputs describes the model's outputs in the order Run returns them.
func (s *Session) Outputs() []engine.TensorInfo { return s.outputs }

// Run checks inputs against the model's metadata, runs the model and
// returns its outputs as Go-owned tensors. When ctx is done during the run,
// ORT is told to terminate and Run returns an error wrapping ctx.Err().
func (s *Session) Run(ctx context.Context, inputs []engine.Tensor) ([]engine.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !s.busy.CompareAndSwap(false, true) {
		return nil, ErrConcurrentUse
	}
	defer s.busy.Store(false)
	if s.closed || s.sess == nil {
		return nil, ErrClosed
	}
	if err := CheckInputs(s.inputs, inputs); err != nil {
		return nil, err
	}

	in := make([]ort.Value, len(inputs))
	defer destroyAll(in)
	for i, t := range inputs {
		v, err := toValue(t)
		if err != nil {
			return nil, fmt.Errorf("%w: input %q: %v", ErrInvalidInput, s.inputs[i].Name, err)
		}
		in[i] = v
	}
	out := make([]ort.Value, len(s.outputs)) // nil: ORT allocates them
	defer destroyAll(out)
	for i, o := range s.outputs {
		if o.DType == engine.FP16 { // static, see tensorInfos
			v, err := toValue(engine.Tensor{DType: engine.FP16, Shape: o.Shape, Data: make([]uint16, engine.Tensor{Shape: o.Shape}.Elements())})
			if err != nil {
				return nil, fmt.Errorf("onnx: output %q: %w", o.Name, err)
			}
			out[i] = v
		}
	}
	if err := s.runCtx(ctx, in, out); err != nil {
		return nil, err
	}
	res := make([]engine.Tensor, len(out))
	for i, v := range out {
		t, err := fromValue(v)
		if err != nil {
			return nil, fmt.Errorf("onnx: output %q: %w", s.outputs[i].Name, err)
		}
		res[i] = t
	}
	return res, nil
}

// runCtx runs ORT with the session's RunOptions and turns ctx cancellation
// into RunOptions.Terminate. The terminate flag is cleared again only after
// the AfterFunc has finished, so it cannot leak into the next run.
func (s *Session) runCtx(ctx context.Context, in, out []ort.Value) error {
	if s.beforeRun != nil {
		s.beforeRun()
	}
	if ctx.Done() == nil {
		return wrapRun(s.sess.RunWithOptions(in, out, s.run))
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = s.run.Terminate()
	})
	err := s.sess.RunWithOptions(in, out, s.run)
	if stop() {
		return wrapRun(err)
	}
	<-fired
	if uerr := s.run.UnsetTerminate(); uerr != nil {
		// The session cannot run again; fail loudly rather than have
		// every later run terminate at once.
		s.destroy()
		return fmt.Errorf("onnx: reset terminate flag: %w", uerr)
	}
	if err != nil {
		return fmt.Errorf("onnx: run cancelled: %w", ctx.Err())
	}
	return nil
}

func wrapRun(err error) error {
	if err != nil {
		return fmt.Errorf("onnx: run: %w", err)
	}
	return nil
}

// Close frees the session. It is idempotent, safe on a partially built
// session, and refuses (ErrConcurrentUse) while a Run is in progress.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	if !s.busy.CompareAndSwap(false, true) {
		return ErrConcurrentUse
	}
	defer s.busy.Store(false)
	s.destroy()
	return nil
}

func (s *Session) destroy() {
	s.closed = true
	if s.sess != nil {
		s.sess.Destroy()
		s.sess = nil
	}
	if s.run != nil {
		s.run.Destroy()
		s.run = nil
	}
}

// destroyAll frees values, skipping nil ones, including the typed nil
// pointers the binding leaves in outputs it failed to convert.
func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// CheckInputs reports, wrapping ErrInvalidInput, the first way inputs do
// not fit a model with the given input metadata: their number, a dtype, a
// rank, a fixed dimension, or a data length that does not match the shape.
func CheckInputs(want []engine.TensorInfo, inputs []engine.Tensor) error {
	if len(inputs) != len(want) {
		return fmt.Errorf("%w: model takes %d inputs, got %d", ErrInvalidInput, len(want), len(inputs))
	}
	for i, t := range inputs {
		w := want[i]
		if t.DType != w.DType {
			return fmt.Errorf("%w: input %q wants %s, got %s", ErrInvalidInput, w.Name, w.DType, t.DType)
		}
		if len(t.Shape) != len(w.Shape) {
			return fmt.Errorf("%w: input %q wants rank %d %v, got shape %v", ErrInvalidInput, w.Name, len(w.Shape), w.Shape, t.Shape)
		}
		for d, n := range w.Shape {
			if n >= 0 && t.Shape[d] != n {
				return fmt.Errorf("%w: input %q wants shape %v, got %v (dimension %d)", ErrInvalidInput, w.Name, w.Shape, t.Shape, d)
			}
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: input %q: %v", ErrInvalidInput, w.Name, err)
		}
	}
	return nil
}
