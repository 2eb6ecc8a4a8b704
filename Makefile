# netdrop: build, install and release.
#
#   make                 static binary in bin/netdrop
#   make install         binary, man pages and shell completions under PREFIX (DESTDIR for packaging)
#   make release         dist/: linux/amd64 and linux/arm64 archives, SBOMs, SHA256SUMS
#   make image           the container image the Helm chart and deploy/kubernetes run (CONTAINER=podman)
#   make test            the test suite, as CI runs it (as root for the kernel tests)
#
# Binaries are static (CGO_ENABLED=0): the only package of netdrop's that
# would use cgo is the net package's resolver, and the pure Go resolver reads
# the same /etc/hosts, /etc/resolv.conf and /etc/nsswitch.conf. netdrop uses
# no os/user lookups. The eBPF objects are committed, so no clang either.

GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= bin
DIST      ?= dist
PLATFORMS ?= linux/amd64 linux/arm64
IMAGE     ?= ghcr.io/netdrop/netdrop
# docker, or podman / buildah bud (same arguments).
CONTAINER ?= docker
# The SBOM tool runs from the module proxy at a pinned version; it is not a
# dependency of netdrop's go.mod.
CYCLONEDX ?= github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

# The version the go command would stamp itself: the tag at HEAD, else a
# pseudo-version from the commit time and revision, "+dirty" when the tree
# has changes. Stamped with -X so that it also works in git worktrees and
# image builds without .git (see internal/buildinfo).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
REVTIME  ?= $(shell git log -1 --format=%cI 2>/dev/null)
MODIFIED ?= $(shell git diff --quiet HEAD 2>/dev/null && echo false || echo true)
TAG      := $(shell git describe --tags --match 'v*' --exact-match 2>/dev/null)
PSEUDO   := v0.0.0-$(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null)-$(shell git rev-parse --short=12 HEAD 2>/dev/null)
VERSION  ?= $(if $(TAG),$(TAG),$(PSEUDO))$(if $(filter true,$(MODIFIED)),+dirty)
# File names carry the version without "+".
FILEVER  := $(subst +,-,$(VERSION))
# Archives and man pages dated by the commit, for reproducible releases.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

BUILDINFO := github.com/netdrop/netdrop/internal/buildinfo
LDFLAGS   := -s -w -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION) \
             -X $(BUILDINFO).revisionTime=$(REVTIME) -X $(BUILDINFO).modified=$(MODIFIED)
export CGO_ENABLED := 0
GOBUILD   := $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'

.PHONY: all build man completions install uninstall test release image clean FORCE

all: build

build: $(BINDIR)/netdrop

$(BINDIR)/netdrop: FORCE
	$(GOBUILD) -o $@ ./cmd/netdrop

# Man pages (section 8) and completions come from the command tree.
man: build
	rm -rf $(BINDIR)/man
	$(GO) run -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' ./internal/mangen $(BINDIR)/man

completions: build
	mkdir -p $(BINDIR)/completions
	$(BINDIR)/netdrop completion bash > $(BINDIR)/completions/netdrop.bash
	$(BINDIR)/netdrop completion zsh > $(BINDIR)/completions/_netdrop
	$(BINDIR)/netdrop completion fish > $(BINDIR)/completions/netdrop.fish

install: build man completions
	install -Dm755 $(BINDIR)/netdrop $(DESTDIR)$(PREFIX)/bin/netdrop
	install -d $(DESTDIR)$(PREFIX)/share/man/man8
	install -m644 $(BINDIR)/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -Dm644 $(BINDIR)/completions/netdrop.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/netdrop
	install -Dm644 $(BINDIR)/completions/_netdrop $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_netdrop
	install -Dm644 $(BINDIR)/completions/netdrop.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/netdrop.fish

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/netdrop $(DESTDIR)$(PREFIX)/share/man/man8/netdrop*.8 \
	      $(DESTDIR)$(PREFIX)/share/bash-completion/completions/netdrop \
	      $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_netdrop \
	      $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/netdrop.fish

test:
	$(GO) test -p 1 -count=1 ./...

# One archive per platform (binary, man pages, completions, LICENSE, README,
# CHANGELOG), one CycloneDX SBOM per binary (read from the module list the
# binary embeds, so it names exactly what was linked), and SHA256SUMS over all.
release: man completions
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=netdrop_$(FILEVER)_$${os}_$${arch}; dir=$(DIST)/$$name; \
	  mkdir -p $$dir; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$dir/netdrop ./cmd/netdrop; \
	  cp -r $(BINDIR)/man $(BINDIR)/completions LICENSE README.md CHANGELOG.md $$dir/; \
	  $(GO) run $(CYCLONEDX) bin -json -noserial -notimestamp -version $(VERSION) -output $(DIST)/$$name.cdx.json $$dir/netdrop; \
	  tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
	      -C $(DIST) -czf $(DIST)/$$name.tar.gz $$name; \
	  rm -rf $$dir; \
	done
	cd $(DIST) && sha256sum *.tar.gz *.cdx.json > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

image:
	$(CONTAINER) build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg REVTIME=$(REVTIME) --build-arg MODIFIED=$(MODIFIED) \
	  -t $(IMAGE):$(FILEVER) -t $(IMAGE):latest .

clean:
	rm -rf $(BINDIR) $(DIST)

FORCE:
