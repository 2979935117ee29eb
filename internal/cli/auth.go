package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/visionserve/visionserve/internal/auth"
)

// runAuth makes credentials: an API key and the hash to configure, or a
// webhook signing secret.
func runAuth(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "hash-key" && args[0] != "webhook-secret") {
		fmt.Fprintln(stderr, "usage: visionserve auth hash-key [--stdin] | webhook-secret")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	if args[0] == "webhook-secret" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fail(stderr, "auth", err)
		}
		fmt.Fprintf(stdout, "whsec_%s\n", base64.StdEncoding.EncodeToString(b[:]))
		return 0
	}
	fs := newFlagSet("auth hash-key", "[--stdin]", stderr)
	fromStdin := fs.Bool("stdin", false, "hash the key read from standard input instead of generating one")
	if code, ok := parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visionserve auth hash-key: unexpected argument %q (pass keys on stdin, never on the command line)\n", fs.Arg(0))
		return 2
	}
	if *fromStdin {
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return fail(stderr, "auth", err)
		}
		key := strings.TrimSpace(line)
		if len(key) < auth.MinKeyLength {
			return fail(stderr, "auth", fmt.Errorf("the key is %d characters; use at least %d random ones (or let hash-key generate one)", len(key), auth.MinKeyLength))
		}
		fmt.Fprintln(stdout, auth.HashKey(key))
		return 0
	}
	key, hash, err := auth.GenerateKey()
	if err != nil {
		return fail(stderr, "auth", err)
	}
	fmt.Fprintf(stdout, "key:  %s\nhash: %s\n", key, hash)
	fmt.Fprintln(stderr, "Give the key to the client (it is not stored anywhere); put the hash in auth.api_keys[].hash.")
	return 0
}
