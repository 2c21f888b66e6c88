// Package deploy holds Agora's deployment artefacts — the container image
// (docker/Dockerfile), Docker Compose (compose/compose.yaml), Kubernetes
// manifests (k8s/: a kustomize base, the embedded and distributed
// overlays, and the istio, keda and observability components) and the
// Prometheus rules (observability/) — and the offline tests that check
// them against the code: see docs/deploy.md.
package deploy
