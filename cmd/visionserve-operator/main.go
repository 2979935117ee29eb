// Command visionserve-operator is the Kubernetes manager for VisionService
// resources: flags, probes, metrics and leader election here; everything
// else in internal/controller.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/visionserve/visionserve/api/v1alpha1"
	"github.com/visionserve/visionserve/internal/controller"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		metricsAddr, probeAddr string
		leaderElect            bool
		serviceMonitors        string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the operator's own /metrics (0 disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader, so that several replicas can run with one active")
	flag.StringVar(&serviceMonitors, "service-monitors", "auto", "own a ServiceMonitor per VisionService: auto (when the CRD exists), true, false")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "building the scheme")
		return 1
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		log.Error(err, "building the scheme")
		return 1
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no Kubernetes configuration")
		return 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controller.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "visionserve-operator.visionserve.io",
	})
	if err != nil {
		log.Error(err, "creating the manager")
		return 1
	}
	opts := controller.Options{}
	switch serviceMonitors {
	case "true":
		opts.ServiceMonitors = true
	case "false":
	case "auto":
		_, err := mgr.GetRESTMapper().RESTMapping(controller.ServiceMonitorGVK.GroupKind(), controller.ServiceMonitorGVK.Version)
		opts.ServiceMonitors = err == nil
	default:
		fmt.Fprintf(os.Stderr, "--service-monitors: %q is not auto, true or false\n", serviceMonitors)
		return 2
	}
	if err := controller.Setup(mgr, opts); err != nil {
		log.Error(err, "setting up the controller")
		return 1
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "adding the health check")
		return 1
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "adding the readiness check")
		return 1
	}
	log.Info("starting", "metrics", metricsAddr, "probes", probeAddr, "leaderElection", leaderElect, "serviceMonitors", opts.ServiceMonitors)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "running the manager")
		return 1
	}
	return 0
}
