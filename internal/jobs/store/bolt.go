package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/visionserve/visionserve/internal/keys"
	"github.com/visionserve/visionserve/internal/keys/keybolt"
)

// The embedded database's layout: one bucket per kind of record. Keys
// inside a job are "<job id>/<%06d index>", so a cursor seek on
// "<job id>/" walks them in order.
var (
	bucketMeta   = []byte("meta")   // "schema" -> layout version, "keyring" -> the keyring (package keys)
	bucketJobs   = []byte("jobs")   // id -> Job (JSON)
	bucketTasks  = []byte("tasks")  // id/task -> "" while the task is to be run
	bucketInputs = []byte("inputs") // id/item -> sealed file, deleted when the job ends (or with it: KeepInputs, unless evicted)
	bucketPages  = []byte("pages")  // id/index -> sealed page
	bucketIdem   = []byte("idem")   // owner \x00 key -> id
	bucketOutbox = []byte("outbox") // delivery id -> Delivery (JSON)
)

// boltSchema is the layout version this code writes (see migrateBolt).
// Layout 3 may hold sealed payloads, which a visionserve of layout 2
// would return as they are: it refuses the file instead.
const boltSchema = 3

// Bolt is the embedded store: one bbolt file, one process. Leases live in
// memory: when the process dies they die with it, and at the next start
// every unrecorded task is free to claim again.
type Bolt struct {
	db   *bolt.DB
	opts Options
	keys *keys.Ring // nil when Options.Codec replaced it

	// mu serialises writers with the in-memory index of unfinished jobs
	// and leases, which mirrors the file.
	mu      sync.Mutex
	pending map[string]*pendingJob
	kept    *keptIndex            // final jobs whose inputs are kept
	leases  map[string]*taskLease // token -> lease
	dleases map[string]*taskLease // delivery id -> lease (task unused)
	served  map[string]uint64     // tenant -> claim sequence number of its last claim
	seq     uint64
}

var _ Store = (*Bolt)(nil)

// pendingJob is an unfinished job as the scheduler needs it.
type pendingJob struct {
	id      string
	tenant  string
	created time.Time
	bytes   int64
	tasks   map[int]string // task still to record -> token of its lease ("" free)
}

// keptJob is a final job whose inputs are kept, as eviction needs it.
type keptJob struct {
	keptInput
	finished time.Time
}

// before orders kept jobs by their end, then id.
func (k *keptJob) before(o *keptJob) bool {
	if !k.finished.Equal(o.finished) {
		return k.finished.Before(o.finished)
	}
	return k.id < o.id
}

// keptIndex holds the final jobs whose inputs are kept, and their totals.
type keptIndex struct {
	jobs   map[string]*keptJob
	all    int64
	tenant map[string]int64
}

func newKeptIndex() *keptIndex {
	return &keptIndex{jobs: map[string]*keptJob{}, tenant: map[string]int64{}}
}

func (x *keptIndex) add(k *keptJob) {
	x.remove(k.id)
	x.jobs[k.id] = k
	x.all += k.bytes
	x.tenant[k.tenant] += k.bytes
}

func (x *keptIndex) remove(id string) {
	k := x.jobs[id]
	if k == nil {
		return
	}
	delete(x.jobs, id)
	x.all -= k.bytes
	if x.tenant[k.tenant] -= k.bytes; x.tenant[k.tenant] == 0 {
		delete(x.tenant, k.tenant)
	}
}

// oldest returns the job that ended first among the kept ones and extra
// (of tenant; "": any) that skip does not rule out; nil when none.
func (x *keptIndex) oldest(tenant string, extra *keptJob, skip func(id string) bool) *keptJob {
	var best *keptJob
	consider := func(k *keptJob) {
		if (tenant == "" || k.tenant == tenant) && !skip(k.id) && (best == nil || k.before(best)) {
			best = k
		}
	}
	for _, k := range x.jobs {
		consider(k)
	}
	consider(extra)
	return best
}

type taskLease struct {
	job    string
	task   int
	worker string
	token  string
	dest   string
	until  time.Time
}

// OpenBolt opens (creating) dir/jobs.db, migrating an older layout, and
// indexes the unfinished jobs. A second process on the same file fails
// after a second instead of waiting for the lock.
func OpenBolt(dir string, opts Options) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := keybolt.Open(filepath.Join(dir, "jobs.db"), time.Second, migrateBolt)
	if err != nil {
		return nil, fmt.Errorf("the job database: %w", err)
	}
	s := &Bolt{db: db, opts: opts.withDefaults(), pending: map[string]*pendingJob{}, kept: newKeptIndex(), leases: map[string]*taskLease{},
		dleases: map[string]*taskLease{}, served: map[string]uint64{}}
	kr := keybolt.Keyring{DB: db, Bucket: bucketMeta, Key: []byte("keyring")}
	if s.keys, err = s.opts.openKeys(context.Background(), kr, s); err != nil {
		db.Close()
		return nil, fmt.Errorf("the job database %s: %w", db.Path(), err)
	}
	if err := s.index(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.endRecorded(time.Now()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// endRecorded ends the unfinished jobs that have no task left to run.
// Only a database of layout 1 can hold one (its last result and the
// job's end were two transactions); since then they are one.
func (s *Bolt) endRecorded(now time.Time) error {
	for id, p := range s.pending {
		if len(p.tasks) > 0 {
			continue
		}
		var kc keptChange
		err := s.db.Update(func(tx *bolt.Tx) error {
			j, err := getJob(tx, id)
			if err != nil {
				return err
			}
			kc, err = s.endLocked(tx, j, finalState(j), now, s.opts.KeepInputs)
			return err
		})
		if err != nil {
			return err
		}
		delete(s.pending, id)
		s.applyKept(kc)
	}
	return nil
}

// Close implements Store.
func (s *Bolt) Close() error { return s.db.Close() }

// Keys returns the ring that seals the store's payloads.
func (s *Bolt) Keys() *keys.Ring { return s.keys }

// Reseal implements keys.Records: the inputs, then the pages.
func (s *Bolt) Reseal(ctx context.Context, fn func(ref string, stored []byte) ([]byte, error)) error {
	for _, b := range []struct {
		name []byte
		ref  func(string, int) string
	}{{bucketInputs, inputRef}, {bucketPages, pageRef}} {
		err := keybolt.Rewrite(ctx, s.db, [][]byte{b.name}, func(k, v []byte) ([]byte, error) {
			id, i, err := splitKey(k)
			if err != nil {
				return nil, err
			}
			return fn(b.ref(id, i), v)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// index loads the unfinished jobs and their unrecorded tasks.
func (s *Bolt) index() error {
	return s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			j, err := decodeJob(k, v)
			if err != nil {
				return err
			}
			if j.State.Terminal() {
				if hasPrefix(tx, bucketInputs, j.ID) {
					s.kept.add(&keptJob{keptInput{j.ID, j.Tenant, j.InputBytes}, j.Finished})
				}
				return nil
			}
			s.pending[j.ID] = &pendingJob{id: j.ID, tenant: j.Tenant, created: j.Created, bytes: j.InputBytes, tasks: map[int]string{}}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketTasks).ForEach(func(k, _ []byte) error {
			id, i, err := splitKey(k)
			if err != nil {
				return err
			}
			if p := s.pending[id]; p != nil {
				p.tasks[i] = ""
			}
			return nil
		})
	})
}

func subKey(id string, i int) []byte { return fmt.Appendf(nil, "%s/%06d", id, i) }

func splitKey(k []byte) (string, int, error) {
	slash := bytes.LastIndexByte(k, '/')
	if slash < 0 {
		return "", 0, fmt.Errorf("corrupt key %q", k)
	}
	i, err := strconv.Atoi(string(k[slash+1:]))
	if err != nil {
		return "", 0, fmt.Errorf("corrupt key %q", k)
	}
	return string(k[:slash]), i, nil
}

func idemKey(owner, key string) []byte { return []byte(owner + "\x00" + key) }

func decodeJob(k, v []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(v, &j); err != nil {
		return nil, fmt.Errorf("job %s: corrupt record: %w", k, err)
	}
	return &j, nil
}

func getJob(tx *bolt.Tx, id string) (*Job, error) {
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeJob([]byte(id), v)
}

func putJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), b)
}

// deletePrefix removes every key of bucket starting with id + "/".
func deletePrefix(tx *bolt.Tx, bucket []byte, id string) error {
	prefix := []byte(id + "/")
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(tx *bolt.Tx, bucket []byte, id string) bool {
	prefix := []byte(id + "/")
	k, _ := tx.Bucket(bucket).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// Create implements Jobs.
func (s *Bolt) Create(_ context.Context, j *Job, inputs [][]byte, lim Limits) (*Job, error) {
	sealed, err := sealInputs(s.opts.Codec, j.ID, inputs)
	if err != nil {
		return nil, err
	}
	j.State = StateQueued
	s.mu.Lock()
	defer s.mu.Unlock()
	var existing *Job
	err = s.db.Update(func(tx *bolt.Tx) error {
		if j.IdempotencyKey != "" {
			k := idemKey(j.Owner, j.IdempotencyKey)
			if id := tx.Bucket(bucketIdem).Get(k); id != nil {
				if p, err := getJob(tx, string(id)); err == nil {
					existing = p
					return nil
				}
			}
			if err := tx.Bucket(bucketIdem).Put(k, []byte(j.ID)); err != nil {
				return err
			}
		}
		if err := checkLimits(lim, s.statsLocked(""), s.statsLocked(j.Tenant), j.InputBytes); err != nil {
			return err
		}
		for i, b := range sealed {
			if err := tx.Bucket(bucketInputs).Put(subKey(j.ID, i), b); err != nil {
				return err
			}
		}
		for i := 0; i < j.Tasks; i++ {
			if err := tx.Bucket(bucketTasks).Put(subKey(j.ID, i), nil); err != nil {
				return err
			}
		}
		return putJSON(tx, bucketJobs, j.ID, j)
	})
	if err != nil || existing != nil {
		return existing, err
	}
	p := &pendingJob{id: j.ID, tenant: j.Tenant, created: j.Created, bytes: j.InputBytes, tasks: map[int]string{}}
	for i := 0; i < j.Tasks; i++ {
		p.tasks[i] = ""
	}
	s.pending[j.ID] = p
	return nil, nil
}

func sealInputs(c Codec, id string, inputs [][]byte) ([][]byte, error) {
	out := make([][]byte, len(inputs))
	for i, in := range inputs {
		b, err := c.Seal(inputRef(id, i), in)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// statsLocked counts the unfinished jobs of tenant ("": all).
func (s *Bolt) statsLocked(tenant string) Stats {
	var st Stats
	for _, p := range s.pending {
		if tenant == "" || p.tenant == tenant {
			st.Jobs++
			st.Bytes += p.bytes
		}
	}
	return st
}

// Stats implements Jobs.
func (s *Bolt) Stats(context.Context) (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.statsLocked("")
	st.KeptBytes = s.kept.all
	return st, nil
}

// Get implements Jobs.
func (s *Bolt) Get(_ context.Context, id string) (j *Job, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		j, err = getJob(tx, id)
		return err
	})
	return j, err
}

// Idempotent implements Jobs.
func (s *Bolt) Idempotent(_ context.Context, owner, key string) (j *Job, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketIdem).Get(idemKey(owner, key))
		if id == nil {
			return nil
		}
		j, err = getJob(tx, string(id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	return j, err
}

// Input implements Jobs.
func (s *Bolt) Input(_ context.Context, id string, item int) ([]byte, error) {
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketInputs).Get(subKey(id, item))
		if v == nil {
			return fmt.Errorf("job %s: input %d: %w", id, item, ErrNotFound)
		}
		data = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.opts.Codec.Open(inputRef(id, item), data)
}

// pageBatch is how many pages one read transaction copies out.
const pageBatch = 32

// Pages implements Jobs.
func (s *Bolt) Pages(_ context.Context, id string) iter.Seq2[Page, error] {
	return func(yield func(Page, error) bool) {
		prefix := []byte(id + "/")
		from := prefix
		for {
			var batch []Page
			err := s.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketPages).Cursor()
				k, v := c.Seek(from)
				if k != nil && bytes.Equal(k, from) && !bytes.Equal(from, prefix) {
					k, v = c.Next() // from is the last key of the previous batch
				}
				for ; k != nil && bytes.HasPrefix(k, prefix) && len(batch) < pageBatch; k, v = c.Next() {
					_, i, err := splitKey(k)
					if err != nil {
						return err
					}
					batch = append(batch, Page{Index: i, Data: bytes.Clone(v)})
					from = bytes.Clone(k)
				}
				return nil
			})
			if err != nil {
				yield(Page{}, err)
				return
			}
			for _, p := range batch {
				data, err := s.opts.Codec.Open(pageRef(id, p.Index), p.Data)
				p.Data = data
				if !yield(p, err) || err != nil {
					return
				}
			}
			if len(batch) < pageBatch {
				return
			}
		}
	}
}

// keptChange is what a job's end did to the kept inputs, for the
// in-memory index once the transaction commits.
type keptChange struct {
	add     *keptJob // the ended job, when its inputs are kept
	evicted []string
}

// applyKept records a committed keptChange.
func (s *Bolt) applyKept(kc keptChange) {
	if kc.add != nil {
		s.kept.add(kc.add)
	}
	for _, id := range kc.evicted {
		s.kept.remove(id)
	}
	if len(kc.evicted) > 0 {
		s.opts.Evicted(len(kc.evicted))
	}
}

// endLocked ends unfinished job j inside tx: state, inputs (unless
// keep, and then the oldest kept inputs past the bounds), webhook, and
// its remaining tasks.
func (s *Bolt) endLocked(tx *bolt.Tx, j *Job, state State, now time.Time, keep bool) (keptChange, error) {
	var kc keptChange
	d, err := s.opts.end(j, state, now)
	if err != nil {
		return kc, err
	}
	buckets := [][]byte{bucketTasks}
	if !keep {
		buckets = append(buckets, bucketInputs)
	}
	for _, b := range buckets {
		if err := deletePrefix(tx, b, j.ID); err != nil {
			return kc, err
		}
	}
	if keep {
		if kc, err = s.evictLocked(tx, j); err != nil {
			return kc, err
		}
	}
	if d != nil {
		if err := putJSON(tx, bucketOutbox, d.ID, d); err != nil {
			return kc, err
		}
	}
	return kc, putJSON(tx, bucketJobs, j.ID, j)
}

// evictLocked counts j's kept inputs and deletes, inside tx, the oldest
// kept inputs past the bounds (Options.fitKept).
func (s *Bolt) evictLocked(tx *bolt.Tx, j *Job) (keptChange, error) {
	ended := &keptJob{keptInput{j.ID, j.Tenant, j.InputBytes}, j.Finished}
	kc := keptChange{add: ended}
	all, mine := s.kept.all+j.InputBytes, s.kept.tenant[j.Tenant]+j.InputBytes
	if !s.opts.overKept(all, mine) {
		return kc, nil
	}
	gone := map[string]bool{}
	oldest := func(tenant string) (keptInput, bool, error) {
		k := s.kept.oldest(tenant, ended, func(id string) bool { return gone[id] })
		if k == nil {
			return keptInput{}, false, nil
		}
		return k.keptInput, true, nil
	}
	drop := func(k keptInput) error {
		gone[k.id] = true
		return deletePrefix(tx, bucketInputs, k.id)
	}
	evicted, err := s.opts.fitKept(j.Tenant, all, mine, oldest, drop)
	kc.evicted = evicted
	if gone[j.ID] {
		kc.add = nil
	}
	return kc, err
}

// forgetLocked drops an ended job from the in-memory index.
func (s *Bolt) forgetLocked(id string) {
	if p := s.pending[id]; p != nil {
		for _, tok := range p.tasks {
			delete(s.leases, tok)
		}
		delete(s.pending, id)
	}
}

// dropLocked drops a deleted job from the in-memory indexes.
func (s *Bolt) dropLocked(id string) {
	s.forgetLocked(id)
	s.kept.remove(id)
}

// Cancel implements Jobs.
func (s *Bolt) Cancel(_ context.Context, id string, now time.Time) (j *Job, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kc keptChange
	err = s.db.Update(func(tx *bolt.Tx) error {
		if j, err = getJob(tx, id); err != nil || j.State.Terminal() {
			return err
		}
		changed = true
		kc, err = s.endLocked(tx, j, StateCanceled, now, s.opts.KeepInputs)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if changed {
		s.forgetLocked(id)
		s.applyKept(kc)
	}
	return j, changed, nil
}

// Delete implements Jobs.
func (s *Bolt) Delete(_ context.Context, id string, now time.Time) (j *Job, canceled bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		if j, err = getJob(tx, id); err != nil {
			return err
		}
		if !j.State.Terminal() {
			canceled = true
			if _, err := s.endLocked(tx, j, StateCanceled, now, false); err != nil {
				return err
			}
		}
		return deleteJob(tx, j)
	})
	if err != nil {
		return nil, false, err
	}
	s.dropLocked(id)
	return j, canceled, nil
}

// deleteJob removes a job and everything stored under it (not its
// pending webhook: that carries its own copy of the body).
func deleteJob(tx *bolt.Tx, j *Job) error {
	if err := tx.Bucket(bucketJobs).Delete([]byte(j.ID)); err != nil {
		return err
	}
	if j.IdempotencyKey != "" {
		k := idemKey(j.Owner, j.IdempotencyKey)
		if string(tx.Bucket(bucketIdem).Get(k)) == j.ID {
			if err := tx.Bucket(bucketIdem).Delete(k); err != nil {
				return err
			}
		}
	}
	for _, b := range [][]byte{bucketInputs, bucketPages, bucketTasks} {
		if err := deletePrefix(tx, b, j.ID); err != nil {
			return err
		}
	}
	return nil
}

// Expire implements Jobs.
func (s *Bolt) Expire(_ context.Context, now time.Time) (int, error) {
	var expired []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			j, err := decodeJob(k, v)
			if err == nil && j.State.Terminal() && now.After(j.Expires) {
				expired = append(expired, j.ID)
			}
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range expired {
		gone := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			j, err := getJob(tx, id)
			if err != nil || !j.State.Terminal() || !now.After(j.Expires) {
				return nil
			}
			gone = true
			return deleteJob(tx, j)
		})
		if err != nil {
			return n, err
		}
		if gone {
			n++
			s.kept.remove(id)
		}
	}
	return n, nil
}

// Claim implements Work.
func (s *Bolt) Claim(_ context.Context, worker string, now time.Time, lease time.Duration) (*Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, task := s.pickLocked(now)
	if p == nil {
		return nil, nil
	}
	var j *Job
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if j, err = getJob(tx, p.id); err != nil || j.State != StateQueued {
			return err
		}
		j.State, j.Updated = StateRunning, now
		return putJSON(tx, bucketJobs, j.ID, j)
	})
	if err != nil {
		return nil, err
	}
	c := &Claim{Job: j, Task: task, Token: NewID("lease_"), Until: now.Add(lease)}
	if old := p.tasks[task]; old != "" {
		delete(s.leases, old)
	}
	p.tasks[task] = c.Token
	s.leases[c.Token] = &taskLease{job: p.id, task: task, worker: worker, token: c.Token, until: c.Until}
	s.seq++
	s.served[p.tenant] = s.seq
	return c, nil
}

// pickLocked chooses the next task: among tenants with a task free to
// claim, the one with the fewest live leases, then the one served least
// recently; its oldest job; that job's first free task.
func (s *Bolt) pickLocked(now time.Time) (*pendingJob, int) {
	running := map[string]int{}
	for _, l := range s.leases {
		if l.until.After(now) {
			if p := s.pending[l.job]; p != nil {
				running[p.tenant]++
			}
		}
	}
	oldest := map[string]*pendingJob{} // tenant -> its oldest job with a free task
	for _, p := range s.pending {
		if o := oldest[p.tenant]; o != nil && (o.created.Before(p.created) || (o.created.Equal(p.created) && o.id < p.id)) {
			continue
		}
		if s.freeTask(p, now) >= 0 {
			oldest[p.tenant] = p
		}
	}
	var best *pendingJob
	for tenant, p := range oldest {
		if best == nil {
			best = p
			continue
		}
		a, b := running[tenant], running[best.tenant]
		if a < b || (a == b && (s.served[tenant] < s.served[best.tenant] || (s.served[tenant] == s.served[best.tenant] && tenant < best.tenant))) {
			best = p
		}
	}
	if best == nil {
		return nil, -1
	}
	return best, s.freeTask(best, now)
}

// freeTask is p's lowest task that is unleased or whose lease expired; -1
// when none.
func (s *Bolt) freeTask(p *pendingJob, now time.Time) int {
	free := -1
	for i, tok := range p.tasks {
		if free >= 0 && i > free {
			continue
		}
		if l := s.leases[tok]; tok == "" || l == nil || !l.until.After(now) {
			free = i
		}
	}
	return free
}

// Renew implements Work.
func (s *Bolt) Renew(_ context.Context, worker string, tokens []string, until time.Time) (lost []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tok := range tokens {
		l := s.leases[tok]
		if l == nil || l.worker != worker || s.pending[l.job] == nil || s.pending[l.job].tasks[l.task] != tok {
			lost = append(lost, tok)
			continue
		}
		l.until = until
	}
	return lost, nil
}

// Release implements Work.
func (s *Bolt) Release(_ context.Context, tokens ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tok := range tokens {
		l := s.leases[tok]
		if l == nil {
			continue
		}
		delete(s.leases, tok)
		if p := s.pending[l.job]; p != nil && p.tasks[l.task] == tok {
			p.tasks[l.task] = ""
		}
	}
	return nil
}

// Complete implements Work.
func (s *Bolt) Complete(_ context.Context, c *Claim, pages []Page, now time.Time) (*Job, error) {
	id := c.Job.ID
	sealed, failed, err := sealPages(s.opts.Codec, id, pages)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ended *Job
	var kc keptChange
	recorded := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		j, err := getJob(tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		tk := subKey(id, c.Task)
		if err != nil || j.State.Terminal() || tx.Bucket(bucketTasks).Get(tk) == nil {
			return err // final, or this task is recorded already
		}
		recorded = true
		if err := tx.Bucket(bucketTasks).Delete(tk); err != nil {
			return err
		}
		for _, p := range sealed {
			if err := tx.Bucket(bucketPages).Put(subKey(id, p.Index), p.Data); err != nil {
				return err
			}
		}
		j.PagesDone += len(pages)
		j.PagesFailed += failed
		j.Updated = now
		if hasPrefix(tx, bucketTasks, id) {
			return putJSON(tx, bucketJobs, id, j)
		}
		ended = j
		kc, err = s.endLocked(tx, j, finalState(j), now, s.opts.KeepInputs)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p := s.pending[id]; p != nil && recorded {
		delete(p.tasks, c.Task)
	}
	delete(s.leases, c.Token)
	if ended != nil {
		s.forgetLocked(id)
		s.applyKept(kc)
	}
	return ended, nil
}

func sealPages(c Codec, id string, pages []Page) (sealed []Page, failed int, err error) {
	sealed = make([]Page, len(pages))
	for i, p := range pages {
		if p.Failed {
			failed++
		}
		b, err := c.Seal(pageRef(id, p.Index), p.Data)
		if err != nil {
			return nil, 0, err
		}
		sealed[i] = Page{Index: p.Index, Failed: p.Failed, Data: b}
	}
	return sealed, failed, nil
}

// outbox reads every delivery.
func (s *Bolt) outbox() ([]*Delivery, error) {
	var out []*Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("delivery %s: corrupt record: %w", k, err)
			}
			out = append(out, &d)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Next.Before(out[j].Next) })
	return out, err
}

// ClaimDelivery implements Outbox.
func (s *Bolt) ClaimDelivery(_ context.Context, worker string, now time.Time, lease time.Duration, perDestination int) (*Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.outbox()
	if err != nil {
		return nil, err
	}
	busy := map[string]int{}
	for _, l := range s.dleases {
		if l.until.After(now) {
			busy[l.dest]++
		}
	}
	for _, d := range all {
		if d.Next.After(now) {
			break
		}
		dest := Destination(d.URL)
		if l := s.dleases[d.ID]; (l != nil && l.until.After(now)) || busy[dest] >= perDestination {
			continue
		}
		d.Token = NewID("lease_")
		s.dleases[d.ID] = &taskLease{worker: worker, token: d.Token, dest: dest, until: now.Add(lease)}
		return d, nil
	}
	return nil, nil
}

// NextDelivery implements Outbox.
func (s *Bolt) NextDelivery(context.Context) (time.Time, bool, error) {
	all, err := s.outbox()
	if err != nil || len(all) == 0 {
		return time.Time{}, false, err
	}
	return all[0].Next, true, nil
}

// DeliveryDone implements Outbox.
func (s *Bolt) DeliveryDone(_ context.Context, d *Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dleases, d.ID)
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete([]byte(d.ID)) })
}

// DeliveryRetry implements Outbox.
func (s *Bolt) DeliveryRetry(_ context.Context, d *Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dleases, d.ID)
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOutbox).Get([]byte(d.ID)) == nil {
			return nil // done by another attempt meanwhile
		}
		return putJSON(tx, bucketOutbox, d.ID, d)
	})
}
