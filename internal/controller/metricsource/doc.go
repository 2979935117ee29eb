// Package metricsource measures a visionserve fleet for the autoscaler and
// the canary: it scrapes each ready pod's /metrics (Parse, Scraper) or asks
// a Prometheus server (Prometheus), and sets a pod's traffic weights through
// its admin API (SetTraffic).
//
// It reads these series (docs/operations.md lists them):
//
//	visionserve_http_requests_total{route,method,code}    requests: every POST route but the admin ones, every status
//	visionserve_grpc_requests_total{method,code}          requests: every gRPC method but health, reflection and metadata
//	visionserve_prediction_confidence_{sum,count}{model,version}
//	visionserve_workers, visionserve_workers_busy, visionserve_queue_length
//
// It never imports the server's packages: the contract is the text format.
package metricsource
