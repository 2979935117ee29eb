package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/oip"
)

// ONNXOptions are the runtime options of kind onnx.
type ONNXOptions struct {
	// File is the model file in the model directory.
	File string `json:"file"`
	// Session settings: sessions (default: one per worker),
	// intra_op_threads and inter_op_threads (default 1).
	onnx.Options
	// Batching, when present, turns dynamic batching on; absent keys take
	// batch.DefaultOptions (max_batch_size 8, max_queue_delay "5ms",
	// max_queue 64). Off by default: see docs/oip.md for when it pays.
	Batching json.RawMessage `json:"batching,omitempty"`
}

// ONNX loads a generic ONNX model served on the inference protocol: a pool
// of sessions, and a runner that either batches runs or runs each on its
// own, each run holding one scheduler worker.
func ONNX(ctx context.Context, name, version string, files Files, runtime json.RawMessage, env Env) (m *Model, err error) {
	opts := ONNXOptions{File: "model.onnx", Options: onnx.DefaultOptions()}
	opts.Sessions = max(env.Instances, 1)
	if err := decodeRuntime(runtime, &opts); err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	var bopts *batch.Options
	if opts.Batching != nil {
		b := batch.DefaultOptions()
		if err := decodeRuntime(opts.Batching, &b); err != nil {
			return nil, fmt.Errorf("model %s: batching: %w", name, err)
		}
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("model %s: batching: %w", name, err)
		}
		bopts = &b
	}
	start := time.Now()
	m = &Model{Name: name, Version: version, Kind: KindONNX}
	defer m.onFail(&err)
	pool, err := loadONNX(ctx, files, opts.File, "model", opts.Options, env)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m.closers = append(m.closers, pool.Close)
	sig := oip.Signature{Platform: oip.PlatformONNX, Inputs: pool.Inputs(), Outputs: pool.Outputs()}
	var runner engine.TensorRunner = batch.Unbatched(pool, env.Scheduler)
	if bopts != nil {
		var obs batch.Observer
		if env.Metrics != nil {
			obs = env.Metrics.BatchObserver(name, version)
		}
		b, err := batch.New(batch.Config{Runner: pool, Inputs: sig.Inputs, Outputs: sig.Outputs, Scheduler: env.Scheduler,
			Options: *bopts, Parallel: pool.Size(), Observer: obs})
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		m.closers = append(m.closers, b.Close)
		runner = b
		m.Batching = true
	}
	m.Tensor = oip.NewTensorModel(sig, runner)
	attrs := []any{"model", name, "version", version, "kind", KindONNX, "file", opts.File, "sessions", pool.Size(),
		"intra_op_threads", opts.IntraOpThreads, "batching", m.Batching}
	if bopts != nil {
		attrs = append(attrs, "max_batch_size", bopts.MaxBatchSize, "max_queue_delay", time.Duration(bopts.MaxQueueDelay))
	}
	env.log().Info("model loaded", append(attrs, "duration", time.Since(start).Round(time.Millisecond))...)
	return m, nil
}

// loadONNX reads one model file into a session pool, which ONNX Runtime
// builds from those bytes.
func loadONNX(ctx context.Context, files Files, file, what string, opts onnx.Options, env Env) (*onnx.Pool, error) {
	data, err := readFile(ctx, files, file, what)
	if err != nil {
		return nil, err
	}
	if _, err := onnx.Init(env.ONNXLibrary); err != nil {
		return nil, err
	}
	pool, err := onnx.NewPool(data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, file, err)
	}
	return pool, nil
}
