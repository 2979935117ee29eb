package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

var ctx = context.Background()

// memStore is a store in memory: records by ref, and a keyring document.
type memStore struct {
	mu      sync.Mutex
	doc     []byte
	records map[string][]byte
	saves   int
	// conflicts makes that many Saves fail with ErrConflict, after
	// storing other as the document (another replica's).
	conflicts int
	other     []byte
}

func newMem() *memStore { return &memStore{records: map[string][]byte{}} }

func (m *memStore) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.doc), nil
}

func (m *memStore) Save(_ context.Context, prev, next []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conflicts > 0 {
		m.conflicts--
		m.doc = m.other
		return ErrConflict
	}
	if !bytes.Equal(m.doc, prev) {
		return ErrConflict
	}
	m.doc = bytes.Clone(next)
	m.saves++
	return nil
}

func (m *memStore) Reseal(_ context.Context, fn func(string, []byte) ([]byte, error)) error {
	m.mu.Lock()
	refs := make([]string, 0, len(m.records))
	for r := range m.records {
		refs = append(refs, r)
	}
	m.mu.Unlock()
	sort.Strings(refs)
	for _, r := range refs {
		m.mu.Lock()
		old := bytes.Clone(m.records[r])
		m.mu.Unlock()
		nv, err := fn(r, old)
		if err != nil {
			return err
		}
		if nv != nil {
			m.mu.Lock()
			if bytes.Equal(m.records[r], old) {
				m.records[r] = nv
			}
			m.mu.Unlock()
		}
	}
	return nil
}

// sharedMem is a memStore that replicas share.
type sharedMem struct{ *memStore }

func (sharedMem) Shared() {}

func store(m Keyring, recs Records) Store { return Store{Domain: "test", Keyring: m, Records: recs} }

func mem(m *memStore) Store { return store(m, m) }

func kek(t testing.TB, a Algorithm) *KEK {
	t.Helper()
	text, err := NewKEK(a)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKEK(text, "test")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t testing.TB, s Store, c Config) *Ring {
	t.Helper()
	r, err := Open(ctx, c, s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Known-answer tests of the two AEADs as the package builds them: SM4-GCM
// against RFC 8998 appendix A.1 and GB/T 36624-2018 appendix C.5, and
// AES-256-GCM against test case 16 of the GCM specification (McGrew and
// Viega; NIST's validation vectors include it).
func TestKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		alg                  Algorithm
		key, iv, aad, pt, ct string // ct includes the tag
	}{
		{
			name: "SM4-GCM RFC 8998 A.1", alg: SM4GCM,
			key: "0123456789ABCDEFFEDCBA9876543210", iv: "00001234567800000000ABCD",
			aad: "FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2",
			pt:  "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
			ct: "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D" +
				"83DE3541E4C2B58177E065A9BF7B62EC",
		},
		{
			name: "SM4-GCM GB/T 36624 C.5", alg: SM4GCM,
			key: "00000000000000000000000000000000", iv: "000000000000000000000000",
			pt: "00000000000000000000000000000000",
			ct: "7de2aa7f1110188218063be1bfeb6d89b851b5f39493752be508f1bb4482c557",
		},
		{
			name: "AES-256-GCM test case 16", alg: AES256GCM,
			key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
			aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
			pt:  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
			ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" +
				"76fc6ece0f4e1768cddf8853bb2d551b",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := newAEAD(tc.alg, unhex(tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Seal(nil, unhex(tc.iv), unhex(tc.pt), unhex(tc.aad)); !bytes.Equal(got, unhex(tc.ct)) {
				t.Fatalf("sealed %x\nwant   %x", got, unhex(tc.ct))
			}
			if got, err := a.Open(nil, unhex(tc.iv), unhex(tc.ct), unhex(tc.aad)); err != nil || !bytes.Equal(got, unhex(tc.pt)) {
				t.Fatalf("opened %x %v", got, err)
			}
		})
	}
}

// A sealed record opens under its own ref only: the same bytes under
// another record's ref, or in another kind of store, or with any byte
// changed, do not.
func TestSealBindsRecord(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			m := newMem()
			k := kek(t, alg)
			r := open(t, mem(m), Config{Algorithm: alg, KEK: k})
			plain := []byte("the embedding of alice")
			sealed, err := r.Seal("face/alice", plain)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(plain)+Overhead || !Sealed(sealed) || bytes.Contains(sealed, plain) {
				t.Fatalf("sealed %x", sealed)
			}
			if got, err := r.Open("face/alice", sealed); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("open: %q %v", got, err)
			}
			if again, _ := r.Seal("face/alice", plain); bytes.Equal(again, sealed) {
				t.Fatal("two seals of one record are equal: the nonce is not fresh")
			}
			if _, err := r.Open("face/bob", sealed); !errors.Is(err, ErrUnauthentic) {
				t.Fatalf("under another ref: %v", err)
			}
			if _, err := Open(ctx, Config{KEK: k}, Store{Domain: "other", Keyring: m, Records: m}); err == nil {
				t.Fatal("another kind of store opened this keyring")
			}
			other := Clear("other")
			other.install(k, m.doc, r.st) // the same data keys, in another kind of store
			if _, err := other.Open("face/alice", sealed); !errors.Is(err, ErrUnauthentic) {
				t.Fatalf("in another domain: %v", err)
			}
			for i := range sealed {
				bad := bytes.Clone(sealed)
				bad[i] ^= 0x10
				if _, err := r.Open("face/alice", bad); err == nil {
					t.Fatalf("byte %d changed: opened", i)
				}
			}
			if _, err := r.Open("face/alice", sealed[:Overhead-1]); !errors.Is(err, ErrUnauthentic) {
				t.Fatalf("truncated: %v", err)
			}
		})
	}
}

// The keyring names its KEK and holds no data key in clear; another KEK,
// or none, is refused when opening.
func TestKeyringNeedsItsKEK(t *testing.T) {
	m := newMem()
	k := kek(t, AES256GCM)
	r := open(t, mem(m), Config{KEK: k})
	for _, dk := range r.st.Keys {
		if bytes.Contains(m.doc, dk.Key) || bytes.Contains(m.doc, []byte(base64.StdEncoding.EncodeToString(dk.Key))) {
			t.Fatal("a data key is readable in the keyring document")
		}
	}
	other := kek(t, AES256GCM)
	_, err := Open(ctx, Config{KEK: other}, mem(m))
	var we *WrongKEKError
	if !errors.As(err, &we) || we.Want != k.ID() || we.Got != other.ID() || !strings.Contains(err.Error(), "test") {
		t.Fatalf("another KEK: %v", err)
	}
	if _, err := Open(ctx, Config{}, mem(m)); !errors.Is(err, ErrEncryptedStore) || !strings.Contains(err.Error(), k.ID()) {
		t.Fatalf("no KEK: %v", err)
	}
	// A keyring altered under the right fingerprint does not open.
	var d document
	mustJSON(t, m.doc, &d)
	d.Sealed[len(d.Sealed)-1] ^= 1
	m.doc = marshal(t, d)
	if _, err := Open(ctx, Config{KEK: k}, mem(m)); !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("altered keyring: %v", err)
	}
}

// Without a KEK and without a keyring, records stay in clear; a sealed
// record is refused rather than returned as it is.
func TestClearRing(t *testing.T) {
	m := newMem()
	r := open(t, mem(m), Config{})
	if b, _ := r.Seal("x", []byte("plain")); string(b) != "plain" || m.doc != nil {
		t.Fatalf("clear seal %q, keyring %q", b, m.doc)
	}
	sealed, _ := open(t, mem(newMem()), Config{KEK: kek(t, SM4GCM)}).Seal("x", []byte("plain"))
	if _, err := r.Open("x", sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a sealed record in a clear store: %v", err)
	}
	if _, err := r.Reencrypt(ctx, false); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("reencrypt without a key: %v", err)
	}
}

// A keyring made over an empty store takes no record in clear; one made
// over a store of clear records reads them until they are re-encrypted.
func TestClearRecords(t *testing.T) {
	empty := newMem()
	r := open(t, mem(empty), Config{KEK: kek(t, AES256GCM)})
	if r.Info().ClearRecords {
		t.Fatal("an empty store's keyring takes clear records")
	}
	if _, err := r.Open("a", []byte("planted")); !errors.Is(err, ErrClearRecord) {
		t.Fatalf("a clear record: %v", err)
	}

	m := newMem()
	m.records["a"], m.records["b"] = []byte("clear a"), []byte("clear b")
	k := kek(t, AES256GCM)
	r = open(t, mem(m), Config{KEK: k})
	if !r.Info().ClearRecords {
		t.Fatal("the keyring of a store of clear records does not say so")
	}
	if b, err := r.Open("a", m.records["a"]); err != nil || string(b) != "clear a" {
		t.Fatalf("a clear record: %q %v", b, err)
	}
	m.records["c"], _ = r.Seal("c", []byte("sealed c"))
	c, err := r.Reencrypt(ctx, true)
	if err != nil || c.Resealed != 2 || c.Clear != 0 || c.ByKey[1] != 3 {
		t.Fatalf("encrypting: %+v %v", c, err)
	}
	for ref, b := range m.records {
		if !Sealed(b) || bytes.Contains(b, []byte("clear")) {
			t.Fatalf("%s still clear", ref)
		}
	}
	r = open(t, mem(m), Config{KEK: k})
	if r.Info().ClearRecords {
		t.Fatal("the keyring takes clear records after encrypting")
	}
	if _, err := r.Open("a", []byte("clear a")); !errors.Is(err, ErrClearRecord) {
		t.Fatalf("clear after encrypting: %v", err)
	}
}

// Rotation: a new data key seals new records while old ones stay
// readable; a new KEK re-wraps the keyring, after which only it opens the
// store; re-encryption moves every record to the active key.
func TestRotation(t *testing.T) {
	m := newMem()
	k1, k2 := kek(t, AES256GCM), kek(t, SM4GCM)
	r := open(t, mem(m), Config{KEK: k1})
	m.records["old"], _ = r.Seal("old", []byte("under key 1"))
	if id, err := r.AddKey(ctx, SM4GCM); err != nil || id != 2 {
		t.Fatalf("add key: %d %v", id, err)
	}
	if id, alg := r.Active(); id != 2 || alg != SM4GCM {
		t.Fatalf("active %d %s", id, alg)
	}
	m.records["new"], _ = r.Seal("new", []byte("under key 2"))
	if err := r.Rewrap(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if err := r.Rewrap(ctx, k2); err == nil {
		t.Fatal("re-wrapped under the KEK in use")
	}
	if _, err := Open(ctx, Config{KEK: k1}, mem(m)); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("the old KEK: %v", err)
	}
	r = open(t, mem(m), Config{KEK: k2})
	for ref, want := range map[string]string{"old": "under key 1", "new": "under key 2"} {
		if b, err := r.Open(ref, m.records[ref]); err != nil || string(b) != want {
			t.Fatalf("%s after rotation: %q %v", ref, b, err)
		}
	}
	if c, err := r.Census(ctx); err != nil || c.ByKey[1] != 1 || c.ByKey[2] != 1 {
		t.Fatalf("census %+v %v", c, err)
	}
	c, err := r.Reencrypt(ctx, false)
	if err != nil || c.Resealed != 1 || c.ByKey[2] != 2 || c.ByKey[1] != 0 {
		t.Fatalf("reencrypt %+v %v", c, err)
	}
	if b, err := r.Open("old", m.records["old"]); err != nil || string(b) != "under key 1" {
		t.Fatalf("old after re-encryption: %q %v", b, err)
	}
	info := r.Info()
	if info.KEK != k2.ID() || info.KEKAlgorithm != SM4GCM || len(info.Keys) != 2 || !info.Keys[1].Active || info.Keys[0].Algorithm != AES256GCM {
		t.Fatalf("info %+v", info)
	}
	// A record that does not open stops re-encryption, named.
	m.records["zzz"] = append(bytes.Clone(m.records["old"][:len(m.records["old"])-1]), 0)
	if _, err := r.AddKey(ctx, AES256GCM); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reencrypt(ctx, false); !errors.Is(err, ErrUnauthentic) || !strings.Contains(err.Error(), "zzz") {
		t.Fatalf("reencrypt over a damaged record: %v", err)
	}
}

// Replicas starting together on a new store agree on one keyring: the
// one that loses the race adopts the winner's.
func TestFirstKeyringRace(t *testing.T) {
	m := newMem()
	k := kek(t, AES256GCM)
	winner := open(t, mem(newMem()), Config{KEK: k})
	m.conflicts, m.other = 1, winner.doc
	r := open(t, mem(m), Config{KEK: k})
	sealed, _ := winner.Seal("x", []byte("y"))
	if b, err := r.Open("x", sealed); err != nil || string(b) != "y" {
		t.Fatalf("the loser does not use the winner's keys: %q %v", b, err)
	}
}

// A replica on a shared keyring picks up a data key another process
// added when it meets a record sealed under it; an embedded one never
// reads its keyring again.
func TestSharedKeyringReloads(t *testing.T) {
	m := newMem()
	k := kek(t, AES256GCM)
	a := open(t, store(sharedMem{m}, m), Config{KEK: k})
	b := open(t, store(sharedMem{m}, m), Config{KEK: k})
	embedded := open(t, mem(m), Config{KEK: k})
	if _, err := a.AddKey(ctx, AES256GCM); err != nil {
		t.Fatal(err)
	}
	sealed, _ := a.Seal("x", []byte("y"))
	if got, err := b.Open("x", sealed); err != nil || string(got) != "y" {
		t.Fatalf("shared: %q %v", got, err)
	}
	if id, _ := b.Active(); id != 2 {
		t.Fatalf("b seals under key %d after reloading", id)
	}
	if _, err := embedded.Open("x", sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("embedded: %v", err)
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	text, _ := NewKEK(SM4GCM)
	good := filepath.Join(dir, "kek")
	os.WriteFile(good, []byte(text+"\n"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("24 bytes is no key size"))), 0o600)
	notB64 := filepath.Join(dir, "text")
	os.WriteFile(notB64, []byte("correct horse battery staple"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("TEST_KEK", text)
	t.Setenv("TEST_EMPTY", "")
	for _, tc := range []struct {
		s    Settings
		want string // "" = loads
	}{
		{Settings{}, ""},
		{Settings{KEKFile: good}, ""},
		{Settings{KEKEnv: "TEST_KEK", Algorithm: SM4GCM}, ""},
		{Settings{KEKFile: good, KEKEnv: "TEST_KEK"}, "not both"},
		{Settings{Algorithm: SM4GCM}, "no key-encryption key"},
		{Settings{Algorithm: "des", KEKFile: good}, `algorithm "des"`},
		{Settings{KEKEnv: "sm4:" + text}, "the variable's name"},
		{Settings{KEKEnv: text}, "the variable's name"},
		{Settings{KEKFile: filepath.Join(dir, "missing")}, "no such file"},
		{Settings{KEKFile: empty}, "is empty"},
		{Settings{KEKEnv: "TEST_EMPTY"}, "$TEST_EMPTY (encryption.kek_env) is empty"},
		{Settings{KEKEnv: "TEST_UNSET"}, "is empty"},
		{Settings{KEKFile: short}, "is 23 bytes"},
		{Settings{KEKFile: notB64}, "not base64"},
	} {
		c, err := tc.s.Load()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		case tc.want == "" && tc.s.Enabled() != c.Enabled():
			t.Errorf("%+v: enabled %v", tc.s, c.Enabled())
		}
		if err != nil && strings.Contains(err.Error(), text) {
			t.Errorf("an error shows the key: %v", err)
		}
	}
	if c, _ := (Settings{KEKFile: good}).Load(); c.Algorithm != AES256GCM || c.KEK.Algorithm() != SM4GCM || strings.Contains(fmt.Sprint(c.KEK), text) {
		t.Errorf("defaults: %+v", c)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkSeal and BenchmarkOpen measure one record of an embedding's
// size (128 float32s) and of a job input's (1 MiB).
func BenchmarkSeal(b *testing.B) { benchRecords(b, false) }

func BenchmarkOpen(b *testing.B) { benchRecords(b, true) }

func benchRecords(b *testing.B, opening bool) {
	for _, alg := range Algorithms {
		for _, size := range []int{512, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%d", alg, size), func(b *testing.B) {
				r := open(b, mem(newMem()), Config{Algorithm: alg, KEK: kek(b, alg)})
				plain := make([]byte, size)
				sealed, _ := r.Seal("ref", plain)
				b.SetBytes(int64(size))
				for b.Loop() {
					var err error
					if opening {
						_, err = r.Open("ref", sealed)
					} else {
						_, err = r.Seal("ref", plain)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
