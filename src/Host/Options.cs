using System.Net;
using System.Text.RegularExpressions;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.State;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Host;

/// <summary>The daemon's configuration, read from the environment (see README).</summary>
public sealed record Options(string DockerHost, string? DockerApiVersion, string Table, string DataDir, string LogLevel,
    GatewayConfig? Gateway = null, IReadOnlyList<IPEndPoint>? DnsServers = null, DnsSettings? Dns = null,
    string MetricsAddr = ":50000", bool LogDrops = false, string Db = "sqlite", string Node = "localhost",
    ResolverSettings? ContainerResolvers = null, BindingSettings? Binding = null, DnsProxySettings? Proxy = null,
    PolicyMode Mode = PolicyMode.Enforce)
{
    public static Options FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        string Get(string key, string fallback) => env(key) is { Length: > 0 } v ? v : fallback;

        var table = Get("WHALEWALL_NFT_TABLE", "whalewall");
        if (!Regex.IsMatch(table, "^[A-Za-z][A-Za-z0-9_]{0,31}$"))
            throw new ArgumentException($"WHALEWALL_NFT_TABLE \"{table}\" must be a letter followed by up to 31 letters, digits or _");
        var level = Get("WHALEWALL_LOG_LEVEL", "info").ToLowerInvariant();
        if (level is not ("debug" or "info" or "warning" or "error"))
            throw new ArgumentException($"WHALEWALL_LOG_LEVEL \"{level}\" must be debug, info, warning or error");

        // deny-by-default mode is on when GATEWAY_NETWORKS is set at all (empty: every bridge network);
        // `check` reads the same variables through the same function
        var (context, errors) = DecisionContext.FromSettings(env("GATEWAY_NETWORKS"), env("DEFAULT_OUTBOUND"));
        if (context is null) throw new ArgumentException(string.Join("; ", errors));
        var gateway = context.Gateway;
        // WHALEWALL_MODE=audit: every managed container whose labels do not say otherwise
        var mode = ContainerMode.Parse(env("WHALEWALL_MODE"))
            ?? throw new ArgumentException($"WHALEWALL_MODE \"{env("WHALEWALL_MODE")}\" must be enforce or audit");

        var dnsServers = new List<IPEndPoint>();
        foreach (var entry in (env("WHALEWALL_DNS_SERVERS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // the address as written goes through the strict parser (no octal-looking 010.0.0.1 read as 8.0.0.1)
            var host = entry.StartsWith('[') ? entry[1..Math.Max(1, entry.IndexOf(']'))] : entry.Count(c => c == ':') == 1 ? entry[..entry.IndexOf(':')] : entry;
            if (IPEndPoint.TryParse(entry, out var ep) && Addresses.TryParse(host, out _))
                dnsServers.Add(ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep);
            else throw new ArgumentException($"WHALEWALL_DNS_SERVERS: \"{entry}\" is not an address or address:port");
        }
        var containerDns = new List<IPAddress>();
        foreach (var entry in (env("WHALEWALL_CONTAINER_DNS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Addresses.TryParse(entry, out var address)) containerDns.Add(address);
            else throw new ArgumentException($"WHALEWALL_CONTAINER_DNS: \"{entry}\" is not an address");
        }
        var resolvers = new ResolverSettings([.. containerDns.Distinct()], Get("WHALEWALL_DOCKER_CONFIG", ResolverSettings.DefaultDaemonConfig));

        TimeSpan Seconds(string key, TimeSpan fallback) =>
            env(key) is { Length: > 0 } v
                ? double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 0
                    ? TimeSpan.FromSeconds(n)
                    : throw new ArgumentException($"{key} \"{v}\" must be a number of seconds")
                : fallback;
        var dns = new DnsSettings(
            Seconds("WHALEWALL_DNS_MIN_TTL", DnsSettings.Default.MinTtl),
            Seconds("WHALEWALL_DNS_MAX_TTL", DnsSettings.Default.MaxTtl),
            Seconds("WHALEWALL_DNS_GRACE", DnsSettings.Default.Grace));
        if (dns.MinTtl > dns.MaxTtl) throw new ArgumentException("WHALEWALL_DNS_MIN_TTL is larger than WHALEWALL_DNS_MAX_TTL");

        // binding containers to their bridge ports (docs/binding.md); WHEN_DOWN: what unknown
        // addresses on guarded networks do while the daemon is stopped
        var bindingOn = Get("WHALEWALL_BINDING", "on").ToLowerInvariant() switch
        {
            "on" or "1" or "true" or "yes" => true,
            "off" or "0" or "false" or "no" => false,
            var v => throw new ArgumentException($"WHALEWALL_BINDING \"{v}\" must be on or off"),
        };
        var lease = Seconds("WHALEWALL_GUARD_LEASE", TimeSpan.FromSeconds(30));
        if (lease < TimeSpan.FromSeconds(3)) throw new ArgumentException("WHALEWALL_GUARD_LEASE must be at least 3 seconds");
        var binding = Get("WHALEWALL_WHEN_DOWN", "strict").ToLowerInvariant() switch
        {
            "strict" => new BindingSettings(bindingOn, null),
            "lenient" => new BindingSettings(bindingOn, lease),
            var v => throw new ArgumentException($"WHALEWALL_WHEN_DOWN \"{v}\" must be strict or lenient"),
        };

        // the DNS proxy (docs/dns-proxy.md): on unless WHALEWALL_DNS_PROXY=off
        var proxyOn = DecisionContext.ProxySetting(env("WHALEWALL_DNS_PROXY"))
            ?? throw new ArgumentException($"WHALEWALL_DNS_PROXY \"{env("WHALEWALL_DNS_PROXY")}\" must be on or off");
        var proxyAddr = Get("WHALEWALL_DNS_PROXY_ADDR", $"[::]:{NftLayout.DnsProxyPort}");
        if (!IPEndPoint.TryParse(proxyAddr, out var listen) || (listen.Port != 0 && listen.Port != NftLayout.DnsProxyPort))
            throw new ArgumentException($"WHALEWALL_DNS_PROXY_ADDR \"{proxyAddr}\" must be an address, optionally with port {NftLayout.DnsProxyPort} (the table redirects there)");
        listen.Port = NftLayout.DnsProxyPort;
        double Number(string key, double fallback) =>
            env(key) is { Length: > 0 } v
                ? double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n
                    : throw new ArgumentException($"{key} \"{v}\" must be a positive number")
                : fallback;
        var proxy = new DnsProxySettings(proxyOn, listen,
            new RateLimit(Number("WHALEWALL_DNS_QPS", RateLimit.Default.PerSecond), Number("WHALEWALL_DNS_BURST", RateLimit.Default.Burst)));

        return new Options(
            Get("DOCKER_HOST", "unix:///var/run/docker.sock"),
            env("DOCKER_API_VERSION") is { Length: > 0 } api ? api : null,
            table,
            Get("WHALEWALL_DATA_DIR", "/var/lib/whalewall"),
            level,
            gateway,
            dnsServers,
            dns,
            Get("WHALEWALL_METRICS_ADDR", ":50000"),
            Get("WHALEWALL_LOG_DROPS", "false").ToLowerInvariant() is "1" or "true" or "yes",
            Get("WHALEWALL_DB", "sqlite"),
            Get("WHALEWALL_NODE_NAME", Environment.MachineName),
            resolvers,
            binding,
            proxy,
            mode);
    }

    public StateOptions State => new(Db, DataDir, Node);

    /// <summary>What the daemon decides with (the one decision entry point's context).</summary>
    public DecisionContext Decision => new(Gateway) { DnsProxy = Proxy?.Enabled ?? false, Mode = Mode };

    public string AkkaLogLevel => LogLevel switch
    {
        "debug" => "DEBUG",
        "warning" => "WARNING",
        "error" => "ERROR",
        _ => "INFO",
    };
}

/// <summary>The DNS proxy's settings: on/off (<c>WHALEWALL_DNS_PROXY</c>), where it listens
/// (<c>WHALEWALL_DNS_PROXY_ADDR</c>; the port is the table's, 15353), each container's query
/// rate (<c>WHALEWALL_DNS_QPS</c>, <c>WHALEWALL_DNS_BURST</c>).</summary>
public sealed record DnsProxySettings(bool Enabled, IPEndPoint Listen, RateLimit Rate);
