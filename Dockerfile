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
# endpoint). Installed only when the base lacks them, so a prepared base needs no network.
RUN set -e; \
    if ! dpkg-query -W -f='${Status}\n' libnftables1 libseccomp2 ca-certificates 2>/dev/null | grep -c 'install ok installed' | grep -qx 3; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libnftables1 libseccomp2 ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    mkdir -p /var/lib/whalewall; \
    rm -rf /var/cache/apt/* /var/log/* /tmp/*
COPY --from=build /out/ /app/
ENV WHALEWALL_DATA_DIR=/var/lib/whalewall \
    DOCKER_HOST=unix:///var/run/docker.sock \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
VOLUME ["/var/lib/whalewall"]
# Root inside the container, but with one capability: run it with `--cap-drop ALL --cap-add
# NET_ADMIN` (docker-compose.yml does). See README "Deployment" for why not a non-root user.
ENTRYPOINT ["/app/whalewall"]
CMD ["run"]
