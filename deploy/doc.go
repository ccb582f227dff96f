// Package deploy holds what runs the ledger in containers: the FROM scratch
// image (Dockerfile, build-images.sh), the NATS cluster's configuration
// (nats/nats.conf) and, at the repository root, docker-compose.yml. It has
// no Go code, only tests: that the NATS configuration carries exactly the
// partition mappings the ledger expects, and that the compose cluster comes
// up, answers, and loses no usage when a NATS node and a projector are
// killed.
package deploy
