package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/visionserve/visionserve/internal/app"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/modelcheck"
	"github.com/visionserve/visionserve/internal/modelrepo/trust"
)

// check verifies a package as the server would and loads and warms it up
// in a separate process, as the server does before it loads a version:
// "does this package pass?" without a server. With --child it is that
// separate process (the server starts it; the request comes on stdin, the
// reports go to file descriptor 3).
func (c *modelCmd) check(ctx context.Context, args []string) int {
	if len(args) == 1 && args[0] == "--child" {
		return app.CheckChild(ctx, os.Stdin, os.NewFile(3, "report"), nil)
	}
	flags := c.flags("[--key PUBLIC]... [--ca CA.pem]... [--allow-unsigned] [--timeout D] [--memory-limit SIZE] DIR")
	var keys, cas modelListFlag
	flags.Var(&keys, "key", "trusted PEM public key (repeatable)")
	flags.Var(&cas, "ca", "trusted PEM CA certificate(s) (repeatable)")
	unsigned := flags.Bool("allow-unsigned", false, "check a package without model.sig (as repository.trust.allow_unsigned)")
	d := config.DefaultCheck()
	timeout := flags.Duration("timeout", d.Timeout, "how long the load and warm-up may take")
	memory := d.MemoryLimit
	flags.Func("memory-limit", fmt.Sprintf("data limit of the check process (default %dMiB)", memory>>20), func(s string) error {
		var err error
		memory, err = config.ParseByteSize(s)
		return err
	})
	onnxLib := flags.String("onnx-library", "", "ONNX Runtime library (default: $VISIONSERVE_ONNXRUNTIME_LIB or the setup script's cache)")
	rest, code, ok := c.parse(flags, args, 1)
	if !ok {
		return code
	}
	if len(keys) == 0 && len(cas) == 0 && !*unsigned {
		return c.usageError("give at least one --key or --ca to trust, or --allow-unsigned")
	}
	policy, err := trust.New(trust.Config{Keys: keys, CACertificates: cas, AllowUnsigned: *unsigned})
	if err != nil {
		return c.fail(err)
	}
	pkg, err := policy.Verify(ctx, rest[0])
	if err != nil {
		return c.fail(err)
	}
	cmd, err := modelcheck.Executable()
	if err != nil {
		return c.fail(err)
	}
	r := &modelcheck.Runner{Command: cmd, Timeout: *timeout, MemoryLimit: int64(memory), ONNXLibrary: *onnxLib}
	res, err := r.Run(ctx, pkg)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "checked %s version %d (%s): loaded and warmed up in a separate process in %v, peak memory %d MiB\n",
		pkg.Name, pkg.Version, pkg.Kind, res.Duration.Round(time.Millisecond), res.PeakRSS>>20)
	return 0
}
