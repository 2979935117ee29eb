package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/visionserve/visionserve/internal/modelrepo"
)

// Serialization methods and hash types of the OMS predicate.
const (
	SerializeFiles  = "files"
	SerializeShards = "shards"
	HashSHA256      = "sha256"
	HashBLAKE2b     = "blake2b"
	// HashSM3 is GM/T 0004 SM3, an extension of this package: the hash of
	// statements signed with SM2. Its resources carry SM3 digests, and its
	// subject's root digest is keyed "sm3" (the in-toto DigestSet name)
	// and is the SM3 of the concatenated resource digests.
	HashSM3 = "sm3"
)

// Resource is one signed item: a file (files method) or a byte range of a
// file (shards method, Name "<path>:<start>:<end>"), with its hex digest.
type Resource struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

// Statement is the parsed, checked content of a bundle's payload.
type Statement struct {
	PredicateType string
	// SubjectName is informational only (the model directory's base name,
	// or "model" for some tools); it is never compared.
	SubjectName string
	// RootDigest is the hex digest over the concatenated raw resource
	// digests (SHA-256, or SM3 for HashSM3 statements); empty for legacy
	// statements, which have none.
	RootDigest    string
	Method        string // SerializeFiles or SerializeShards
	HashType      string // HashSHA256 or HashBLAKE2b
	ShardSize     int64  // for SerializeShards
	AllowSymlinks bool
	// IgnorePaths are the model-relative paths the signer excluded; a
	// verifier excludes them too.
	IgnorePaths []string
	// Resources are in the order the statement lists them.
	Resources []Resource
}

// wire types of the in-toto statement; unknown keys are ignored, as the
// format requires.
type wireStatement struct {
	Type          string          `json:"_type"`
	Subject       []wireSubject   `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type wireSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type wirePredicate struct {
	Serialization *wireSerialization `json:"serialization"`
	Resources     []Resource         `json:"resources"`
}

type wireSerialization struct {
	Method        string   `json:"method"`
	HashType      string   `json:"hash_type"`
	AllowSymlinks *bool    `json:"allow_symlinks,omitempty"`
	ShardSize     *float64 `json:"shard_size,omitempty"`
	IgnorePaths   []string `json:"ignore_paths,omitempty"`
}

func invalidStatement(format string, args ...any) error {
	return modelrepo.NewError(modelrepo.ReasonSignatureInvalid, "", "statement: "+fmt.Sprintf(format, args...))
}

// parseStatement decodes and checks a payload as the reference does after
// the signature is valid: statement and predicate types, exactly one
// subject, well-formed resources and a consistent root digest. Legacy
// (v0.2.0) statements list one subject per file instead. Every failure is
// ReasonSignatureInvalid.
func parseStatement(payload []byte) (*Statement, error) {
	var w wireStatement
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, &modelrepo.Error{Reason: modelrepo.ReasonSignatureInvalid, Detail: "statement is not JSON", Err: err}
	}
	if w.Type != StatementType {
		return nil, invalidStatement("_type %q, want %s", truncate(w.Type, 100), StatementType)
	}
	switch w.PredicateType {
	case PredicateType:
		return parseV1(&w)
	case LegacyPredicateType:
		return parseLegacy(&w)
	}
	return nil, invalidStatement("unsupported predicateType %q", truncate(w.PredicateType, 100))
}

func parseV1(w *wireStatement) (*Statement, error) {
	if len(w.Subject) != 1 {
		return nil, invalidStatement("%d subjects, want exactly 1", len(w.Subject))
	}
	var p wirePredicate
	if err := json.Unmarshal(w.Predicate, &p); err != nil {
		return nil, invalidStatement("predicate: %v", err)
	}
	if p.Serialization == nil {
		return nil, invalidStatement("predicate has no serialization")
	}
	rootHash := rootHashOf(p.Serialization.HashType)
	root := w.Subject[0].Digest[rootHash]
	if !isHexDigest(root, sha256.Size) {
		return nil, invalidStatement("subject has no %s root digest", rootHash)
	}
	st := &Statement{
		PredicateType: w.PredicateType,
		SubjectName:   w.Subject[0].Name,
		RootDigest:    root,
		Method:        p.Serialization.Method,
		HashType:      p.Serialization.HashType,
		AllowSymlinks: p.Serialization.AllowSymlinks != nil && *p.Serialization.AllowSymlinks,
		Resources:     p.Resources,
	}
	digestSize, err := digestSize(st.HashType)
	if err != nil {
		return nil, err
	}
	algorithms := map[string]bool{st.HashType: true}
	switch st.Method {
	case SerializeFiles:
	case SerializeShards:
		// The reference writes shard_size as a float (protobuf Struct).
		f := p.Serialization.ShardSize
		if f == nil || *f < 1 || *f > 1<<53 || *f != math.Trunc(*f) {
			return nil, invalidStatement("shards need a positive whole shard_size")
		}
		st.ShardSize = int64(*f)
		algorithms[st.HashType+"-sharded-"+strconv.FormatInt(st.ShardSize, 10)] = true
	default:
		return nil, invalidStatement("unsupported serialization method %q", truncate(st.Method, 50))
	}
	for _, ip := range p.Serialization.IgnorePaths {
		// Entries that would leave the model root are dropped, as the
		// reference does; they cannot match anything inside it.
		if c, ok := cleanRel(ip); ok {
			st.IgnorePaths = append(st.IgnorePaths, c)
		}
	}
	seen := make(map[string]bool, len(st.Resources))
	h, _ := newHash(rootHash)
	for _, r := range st.Resources {
		if !algorithms[r.Algorithm] {
			return nil, invalidStatement("resource %q: algorithm %q does not match hash_type %q", truncate(r.Name, 200), truncate(r.Algorithm, 50), st.HashType)
		}
		if !isHexDigest(r.Digest, digestSize) {
			return nil, invalidStatement("resource %q: malformed digest", truncate(r.Name, 200))
		}
		if err := checkResourceName(r.Name, st.Method); err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, invalidStatement("resource %q listed twice", truncate(r.Name, 200))
		}
		seen[r.Name] = true
		raw, _ := hex.DecodeString(r.Digest)
		h.Write(raw)
	}
	// The root digest is signed but redundant; the reference rejects a
	// statement whose root does not match its resources, and so do we.
	if got := hex.EncodeToString(h.Sum(nil)); got != root {
		return nil, invalidStatement("root digest %s does not match the resources (%s)", root, got)
	}
	return st, nil
}

// parseLegacy reads a v0.2.0 statement: one subject per file, sha256 only,
// no symlinks, no root digest.
func parseLegacy(w *wireStatement) (*Statement, error) {
	if len(w.Subject) == 0 {
		return nil, invalidStatement("legacy statement has no subjects")
	}
	st := &Statement{PredicateType: w.PredicateType, Method: SerializeFiles, HashType: HashSHA256}
	seen := make(map[string]bool, len(w.Subject))
	for _, s := range w.Subject {
		d := s.Digest["sha256"]
		if !isHexDigest(d, sha256.Size) {
			return nil, invalidStatement("legacy subject %q has no sha256 digest", truncate(s.Name, 200))
		}
		if err := checkResourceName(s.Name, SerializeFiles); err != nil {
			return nil, err
		}
		if seen[s.Name] {
			return nil, invalidStatement("subject %q listed twice", truncate(s.Name, 200))
		}
		seen[s.Name] = true
		st.Resources = append(st.Resources, Resource{Name: s.Name, Algorithm: HashSHA256, Digest: d})
	}
	return st, nil
}

// rootHashOf returns the hash of a statement's root digest: SM3 for SM3
// statements, so that they use no other hash, and SHA-256 otherwise, as
// the OMS format has it.
func rootHashOf(hashType string) string {
	if hashType == HashSM3 {
		return HashSM3
	}
	return HashSHA256
}

func digestSize(hashType string) (int, error) {
	switch hashType {
	case HashSHA256, HashSM3:
		return sha256.Size, nil
	case HashBLAKE2b:
		return 64, nil
	}
	return 0, invalidStatement("unsupported hash_type %q", truncate(hashType, 50))
}

// isHexDigest reports whether s is n bytes in lowercase hex.
func isHexDigest(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkResourceName accepts "." (a single-file model) or a clean relative
// slash path; for shards, followed by ":<start>:<end>".
func checkResourceName(name, method string) error {
	p := name
	if method == SerializeShards {
		var ok bool
		if p, _, _, ok = splitShard(name); !ok {
			return invalidStatement("shard name %q is not <path>:<start>:<end>", truncate(name, 200))
		}
	}
	if p == "." {
		return nil
	}
	if c, ok := cleanRel(p); !ok || c != p {
		return invalidStatement("resource name %q is not a clean relative path", truncate(name, 200))
	}
	return nil
}

// splitShard splits "<path>:<start>:<end>" on its last two colons.
func splitShard(name string) (p string, start, end int64, ok bool) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 {
		return "", 0, 0, false
	}
	j := strings.LastIndexByte(name[:i], ':')
	if j < 0 {
		return "", 0, 0, false
	}
	start, err1 := strconv.ParseInt(name[j+1:i], 10, 64)
	end, err2 := strconv.ParseInt(name[i+1:], 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end <= start {
		return "", 0, 0, false
	}
	return name[:j], start, end, true
}

// cleanRel normalises a model-relative slash path ("./a//b" -> "a/b") and
// reports false for paths that are empty, absolute, leave the root, or are
// not valid UTF-8 without control characters.
func cleanRel(p string) (string, bool) {
	if p == "" || !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) || strings.HasPrefix(p, "/") {
		return "", false
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}
