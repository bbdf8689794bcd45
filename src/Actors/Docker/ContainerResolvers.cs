using System.Collections.Immutable;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Docker;

/// <summary>Where WhaleWall takes containers' resolvers from: <paramref name="Configured"/>
/// (<c>WHALEWALL_CONTAINER_DNS</c>) overrides everything; <paramref name="DaemonConfig"/> is the
/// Docker daemon's <c>daemon.json</c> (<c>WHALEWALL_DOCKER_CONFIG</c>).</summary>
public sealed record ResolverSettings(ImmutableArray<IPAddress> Configured, string DaemonConfig)
{
    public const string DefaultDaemonConfig = "/etc/docker/daemon.json";
    public static readonly ResolverSettings Default = new([], DefaultDaemonConfig);
}

/// <summary>The resolvers a container's DNS queries leave its namespace for (what <c>_dns_</c>
/// opens), decided only from what the container cannot change, in the order Docker itself uses
/// (moby <c>daemon/container_operations.go</c>, <c>buildSandboxOptions</c>: the container's
/// <c>HostConfig.Dns</c>, else the daemon's configured <c>dns</c>; libnetwork
/// <c>sandbox_dns_unix.go</c> <c>setupDNS</c> and <c>resolvconf/resolvconf.go</c>: else the
/// host's resolv.conf — <c>/run/systemd/resolve/resolv.conf</c> when <c>/etc/resolv.conf</c>
/// names only systemd-resolved's 127.0.0.53 — without loopback entries, and Google's public
/// resolvers when none is left). Docker's embedded DNS (127.0.0.11, user-defined networks)
/// forwards from inside the container's namespace to those same servers. Loopback resolvers are
/// never opened: they are the container's own, or reached by the embedded DNS from the host's
/// namespace. The Engine API does not expose the daemon's DNS settings (not in <c>/info</c>),
/// so its <c>daemon.json</c> is read; a <c>--dns</c> on dockerd's command line is invisible:
/// set <c>WHALEWALL_CONTAINER_DNS</c> then.</summary>
public static class ContainerResolvers
{
    public const string HostResolvConf = "/etc/resolv.conf";
    public const string SystemdResolvConf = "/run/systemd/resolve/resolv.conf";
    private static readonly IPAddress SystemdStub = IPAddress.Parse("127.0.0.53");

    /// <summary>libnetwork's defaults when the host has no resolver a container can use
    /// (<c>defaultIPv4Dns</c>, <c>defaultIPv6Dns</c>).</summary>
    public static readonly ImmutableArray<IPAddress> DockerDefaults =
        [.. new[] { "8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844" }.Select(IPAddress.Parse)];

    public enum Source { WhaleWallConfig, Container, DockerDaemonConfig, Host, DockerDefaults, HostLoopbackOnly }

    /// <param name="Problem">Something an operator should hear of (an unreadable daemon.json).</param>
    public sealed record Choice(ImmutableArray<IPAddress> Servers, Source From, string? Problem = null);

    /// <param name="containerDns">The container's <c>HostConfig.Dns</c>.</param>
    /// <param name="embeddedDns">The container is on a user-defined network (Docker's embedded DNS serves it).</param>
    /// <param name="read">Reads a host file: its text, or null when it does not exist or cannot be read.</param>
    public static Choice Choose(ResolverSettings settings, IReadOnlyCollection<string>? containerDns, bool embeddedDns, Func<string, string?> read)
    {
        if (!settings.Configured.IsDefaultOrEmpty) return new(settings.Configured, Source.WhaleWallConfig);

        if (containerDns is { Count: > 0 })
            return new(Remote(containerDns.Select(Parse).OfType<IPAddress>()), Source.Container);

        var (daemon, problem) = DaemonDns(read(settings.DaemonConfig), settings.DaemonConfig);
        if (!daemon.IsEmpty) return new(Remote(daemon), Source.DockerDaemonConfig, problem);

        var host = read(HostResolvConf) is { } text ? ResolvConf.Nameservers(text) : [];
        if (host is [var only] && only.Equals(SystemdStub))
            host = read(SystemdResolvConf) is { } resolved ? ResolvConf.Nameservers(resolved) : [];
        var remote = Remote(host);
        if (!remote.IsEmpty) return new(remote, Source.Host, problem);
        // nothing but loopback: the embedded DNS forwards to IPv4 loopback resolvers from the
        // host's namespace (no packet of the container's leaves for them); otherwise Docker writes
        // its defaults into the container's resolv.conf
        return embeddedDns && host.Any(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
            ? new([], Source.HostLoopbackOnly, problem)
            : new(DockerDefaults, Source.DockerDefaults, problem);
    }

    /// <summary>The <c>dns</c> list of a daemon.json text (empty when absent).</summary>
    public static (ImmutableArray<IPAddress> Servers, string? Problem) DaemonDns(string? json, string path)
    {
        if (json is null) return ([], null);
        try
        {
            if (JsonNode.Parse(json) is not JsonObject config || config["dns"] is not { } dns) return ([], null);
            var servers = dns.AsArray().Select(d => Parse(d?.GetValue<string>())).ToList();
            return servers.Any(s => s is null)
                ? ([.. servers.OfType<IPAddress>()], $"{path}: \"dns\" has entries that are not addresses (ignored)")
                : ([.. servers.OfType<IPAddress>()], null);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return ([], $"{path} is not readable as JSON ({e.Message}); the Docker daemon's \"dns\" setting cannot be taken from it");
        }
    }

    /// <summary>Whether Docker's embedded DNS serves a container on these networks (every network but
    /// the default bridge, host and none: libnetwork disables resolution there).</summary>
    public static bool UsesEmbeddedDns(IEnumerable<NetworkAttachment> networks) =>
        networks.Any(n => n.Name is not ("bridge" or "host" or "none" or "default" or ""));

    private static ImmutableArray<IPAddress> Remote(IEnumerable<IPAddress> servers) =>
        [.. servers.Where(s => !IPAddress.IsLoopback(s)).Distinct()];

    private static IPAddress? Parse(string? text) =>
        !string.IsNullOrWhiteSpace(text) && Addresses.TryParse(text.Trim(), out var a) ? a : null;
}
