# WhaleWall: one host-network container per node (see README, "Deployment").
#
# Base images are build arguments, pinned by digest. The defaults are for a normal registry;
# they were NOT pulled or verified on the machine this was written on (it reaches no image
# registry): re-pin with `docker buildx imagetools inspect <image>` before relying on them.
# The tests build this same file from local stand-ins (tests/WhaleWall.EndToEnd/ImageTests.cs):
# a debootstrapped Debian bookworm imported with `docker import` as RUNTIME_IMAGE, and the same
# rootfs plus the host's .NET SDK and an offline NuGet feed as SDK_IMAGE.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0@sha256:ea8bde36c11b6e7eec2656d0e59101d4462f6bd630730f2c8201ed0572b295d5
ARG RUNTIME_IMAGE=debian:bookworm-slim@sha256:4b50eb66f977b4062683ff434ef18ac191da862dbe966961bc11990cf5791a8d

# ---------------------------------------------------------------- build
FROM ${SDK_IMAGE} AS build
ARG SOURCE_DATE_EPOCH=0
ARG RID=linux-x64
WORKDIR /src
# restore first, from the project files alone, so source edits reuse the restore layer
COPY Directory.Build.props ./
COPY src/Firewall/WhaleWall.Firewall.csproj src/Firewall/
COPY src/Actors/WhaleWall.Actors.csproj src/Actors/
COPY src/DnsProxy/WhaleWall.DnsProxy.csproj src/DnsProxy/
COPY src/Host/WhaleWall.Host.csproj src/Host/
RUN dotnet restore src/Host/WhaleWall.Host.csproj -r "$RID" -p:SelfContained=true
COPY src/ src/
# self-contained (no .NET runtime in the image), invariant globalization (no ICU), deterministic
RUN dotnet publish src/Host/WhaleWall.Host.csproj -c Release -r "$RID" --self-contained --no-restore \
        -p:ContinuousIntegrationBuild=true -p:Deterministic=true -p:DebugType=none \
        -o /out \
 && find /out -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE} AS runtime
ARG SOURCE_DATE_EPOCH=0
# libnftables1 (the kernel interface), libseccomp2 (the sandbox), ca-certificates (a TLS Docker
# endpoint), libcap2-bin (setcap, below; getcap shows the result). Installed only when the base
# lacks them, so a prepared base needs no network.
# The daemon runs as whalewall (uid/gid 10001, fixed so a bind-mounted data dir can be chowned
# ahead of time), owning only its data dir.
RUN set -e; \
    missing=; \
    for p in libnftables1 libseccomp2 ca-certificates libcap2-bin; do \
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 whalewall; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/whalewall --shell /usr/sbin/nologin whalewall; \
    install -d -o 10001 -g 10001 -m 0700 /var/lib/whalewall; \
    rm -rf /var/cache/apt/* /var/log/* /tmp/*
COPY --from=build /out/ /app/
# CAP_NET_ADMIN (netlink to nftables) as a file capability of the apphost, so a non-root
# process gets it on exec, and keeps it across the sandbox's re-exec. The apphost loads the
# runtime by absolute path and libnftables/libseccomp from the system library path, which is
# all the loader uses in the secure-execution mode file capabilities put it in (it ignores
# LD_LIBRARY_PATH). Docker copies the capability into the image layer (security.capability).
RUN setcap cap_net_admin+ep /app/whalewall \
 && getcap /app/whalewall | grep -q cap_net_admin \
 && touch -h -d "@${SOURCE_DATE_EPOCH}" /app/whalewall
ENV WHALEWALL_DATA_DIR=/var/lib/whalewall \
    DOCKER_HOST=unix:///var/run/docker.sock \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
VOLUME ["/var/lib/whalewall"]
# Not root. Run it with `--cap-drop ALL --cap-add NET_ADMIN` (the capability must be in the
# container's bounding set for the file capability to take) and the Docker socket's group:
# `--group-add $(stat -c %g /var/run/docker.sock)`; docker-compose.yml does both (README,
# "Deployment"). Not with `--security-opt no-new-privileges`: it would keep the file capability
# from taking (WhaleWall sets no_new_privs itself, once it holds the capability).
USER 10001:10001
ENTRYPOINT ["/app/whalewall"]
CMD ["run"]
