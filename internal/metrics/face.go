package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Face holds the face recognition and gallery collectors. Gallery and
// subject names are user input and never become label values: gallery
// sizes are totals and the largest gallery, and every label below takes a
// fixed set of values (op: detect, verify, enroll, identify; stage:
// decode, detect, embed, search, total; kind: exact, hnsw; result: hit,
// miss, error).
type Face struct {
	FacesDetected *prometheus.CounterVec
	Similarity    *prometheus.HistogramVec
	Stage         *prometheus.HistogramVec
	Cache         *prometheus.CounterVec
	Galleries     prometheus.Gauge
	Subjects      prometheus.Gauge
	Faces         prometheus.Gauge
	LargestFaces  prometheus.Gauge
	Search        *prometheus.HistogramVec
	Rebuilds      *prometheus.CounterVec
	SyncEvents    *prometheus.CounterVec
}

// NewFace creates the face collectors and registers them with reg.
func NewFace(reg prometheus.Registerer) *Face {
	m := &Face{
		FacesDetected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_faces_detected_total",
			Help: "Faces found and used, by operation (detect, verify, enroll, identify).",
		}, []string{"op"}),
		Similarity: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_face_similarity",
			Help:    "Cosine similarity of each verify comparison and each identify match returned, by operation.",
			Buckets: prometheus.LinearBuckets(-0.2, 0.1, 13), // -0.2 .. 1.0
		}, []string{"op"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_face_stage_duration_seconds",
			Help:    "Time per face request stage (decode, detect, embed, search, total).",
			Buckets: latencyBuckets,
		}, []string{"stage"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_face_cache_lookups_total",
			Help: "Embedding cache lookups by image digest, by result (hit, miss).",
		}, []string{"result"}),
		Galleries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_galleries",
			Help: "Face galleries held by this replica.",
		}),
		Subjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_gallery_subjects",
			Help: "Subjects over all galleries.",
		}),
		Faces: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_gallery_faces",
			Help: "Enrolled faces over all galleries (in this replica's index).",
		}),
		LargestFaces: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "visionserve_gallery_largest_faces",
			Help: "Faces in the largest gallery.",
		}),
		Search: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visionserve_gallery_search_seconds",
			Help:    "Time to search one gallery for one face, by index kind (exact, hnsw).",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18), // 10 µs .. 1.3 s
		}, []string{"kind"}),
		Rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_gallery_index_rebuilds_total",
			Help: "Background index builds, by target kind and result (ok, error).",
		}, []string{"kind", "result"}),
		SyncEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_gallery_sync_total",
			Help: "Shared store change log: events applied (result=ok, counted per event) and failed polls (result=error).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.FacesDetected, m.Similarity, m.Stage, m.Cache, m.Galleries, m.Subjects,
		m.Faces, m.LargestFaces, m.Search, m.Rebuilds, m.SyncEvents)
	return m
}

// ObserveFaces implements face.Observer.
func (m *Face) ObserveFaces(op string, n int) { m.FacesDetected.WithLabelValues(op).Add(float64(n)) }

// ObserveSimilarity implements face.Observer.
func (m *Face) ObserveSimilarity(op string, sim float64) {
	m.Similarity.WithLabelValues(op).Observe(sim)
}

// ObserveStage implements face.Observer.
func (m *Face) ObserveStage(stage string, d time.Duration) {
	m.Stage.WithLabelValues(stage).Observe(d.Seconds())
}

// CacheLookup implements face.Observer.
func (m *Face) CacheLookup(hit bool) {
	if hit {
		m.Cache.WithLabelValues("hit").Inc()
		return
	}
	m.Cache.WithLabelValues("miss").Inc()
}

// Sizes implements gallery.Observer.
func (m *Face) Sizes(galleries, subjects, faces, largest int) {
	m.Galleries.Set(float64(galleries))
	m.Subjects.Set(float64(subjects))
	m.Faces.Set(float64(faces))
	m.LargestFaces.Set(float64(largest))
}

// Searched implements gallery.Observer.
func (m *Face) Searched(kind string, d time.Duration) {
	m.Search.WithLabelValues(kind).Observe(d.Seconds())
}

// Rebuilt implements gallery.Observer.
func (m *Face) Rebuilt(kind string, _ time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.Rebuilds.WithLabelValues(kind, result).Inc()
}

// Synced implements gallery.Observer.
func (m *Face) Synced(events int, err error) {
	if err != nil {
		m.SyncEvents.WithLabelValues("error").Inc()
		return
	}
	m.SyncEvents.WithLabelValues("ok").Add(float64(events))
}
