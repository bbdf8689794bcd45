using System.Collections.Immutable;
using System.Net;
using System.Threading.Channels;
using Docker.DotNet;
using Docker.DotNet.Models;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Policy;
using NetworkAttachment = WhaleWall.Firewall.Policy.NetworkAttachment;

namespace WhaleWall.Actors.Docker;

/// <summary>Adapter from Docker.DotNet to <see cref="IDockerSource"/>: translates SDK objects
/// into WhaleWall's own records and nothing else. Containers' resolvers come from
/// <see cref="ContainerResolvers"/> (never from the container's own resolv.conf).</summary>
public sealed class DockerSource(DockerClient client, ResolverSettings? resolvers = null, Action<string>? warn = null) : IDockerSource, IDisposable
{
    private readonly ResolverSettings resolvers = resolvers ?? ResolverSettings.Default;
    private readonly HostFiles files = new();
    private NetworkEndpoints? endpoints;
    private NetworkEndpoints Endpoints => endpoints ??= new NetworkEndpoints(InspectNetworkAsync);

    /// <summary>Network inspects made for endpoint lookups (the bench compares them with the lookups).</summary>
    public long NetworkInspects => endpoints?.Calls ?? 0;
    private string? lastProblem;

    private static readonly HashSet<string> ContainerActions =
        ["create", "start", "restart", "die", "stop", "destroy", "rename", "update", "unpause"];

    private const string SwarmTaskLabel = "com.docker.swarm.task.id";
    private const string GatewayBridge = "docker_gwbridge";

    /// <summary>A Docker API call, its duration observed whether it answers or fails
    /// (<see cref="WhaleWallMetrics.DockerApiSeconds"/>): how much of event -> enforced is dockerd's.</summary>
    private static async Task<T> Timed<T>(string call, Func<Task<T>> request)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try { return await request(); }
        finally { WhaleWallMetrics.DockerApiSeconds.WithLabels(call).Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds); }
    }

    public static DockerSource Connect(string endpoint) =>
        new(new DockerClientBuilder().WithEndpoint(new Uri(endpoint)).Build());

    public async Task<IReadOnlyList<string>> ListContainerIdsAsync(CancellationToken ct)
    {
        var list = await Timed("container_list", () => client.Containers.ListContainersAsync(new ContainersListParameters { All = true }, ct));
        return list.Select(c => c.ID).ToList();
    }

    public async Task<IReadOnlyList<DockerNetwork>> ListNetworksAsync(CancellationToken ct)
    {
        var networks = await Timed("network_list", () => client.Networks.ListNetworksAsync(new NetworksListParameters(), ct));
        var result = networks.Select(n => new DockerNetwork(n.Name, n.ID, n.Driver ?? "",
            [.. (n.IPAM?.Config ?? []).Select(c => c.Subnet).OfType<string>()
                .Select(s => WhaleWall.Firewall.Labels.AddressSyntax.Parse(s).Range).OfType<AddressRange>()])).ToList();
        foreach (var n in networks) networkKinds[n.ID] = KindOf(n);
        return result;
    }

    /// <summary>Per network: its driver and, for bridge networks, its Linux bridge.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Driver, string? Bridge)> networkKinds = new();

    private static (string Driver, string? Bridge) KindOf(NetworkResponse n) =>
        (n.Driver ?? "", n.Driver == "bridge" ? BridgeName(n.ID, n.Options) : null);

    /// <summary>Docker's bridge for a bridge network: the <c>com.docker.network.bridge.name</c>
    /// option (<c>docker0</c> for the default network), else <c>br-</c> and the id's first 12 characters.</summary>
    public static string BridgeName(string networkId, IDictionary<string, string>? options) =>
        options?.TryGetValue("com.docker.network.bridge.name", out var name) == true && !string.IsNullOrEmpty(name)
            ? name
            : "br-" + networkId[..Math.Min(12, networkId.Length)];

    private async Task<(string Driver, string? Bridge)> KindOfAsync(string networkId, CancellationToken ct)
    {
        if (networkKinds.TryGetValue(networkId, out var kind)) return kind;
        try
        {
            var network = await Timed("network_inspect", () => client.Networks.InspectNetworkAsync(networkId, ct));
            return networkKinds[networkId] = KindOf(network);
        }
        catch (DockerApiException) { return ("", null); }
    }

    /// <summary>Container inspects under way at most: a start with 1,000 containers asked for
    /// all of them at once (1,000 connections to dockerd, the answers in flight together). Each
    /// answer in flight also holds a 128 KB copy buffer of the HTTP client's (rented from the shared
    /// array pool, which keeps what it hands back): at 64, a heap dump 10 s after a start with 1,000
    /// held 43 arrays that large (heap 31 MB), at 16 it held 12 of any origin (heap 26 MB), and the
    /// start-up's peak RSS fell from 172-179 to 153-159 MB (bench daemon), with the start-up as long
    /// as before.</summary>
    public const int MaxInspects = 16;

    private readonly SemaphoreSlim inspects = new(MaxInspects);

    /// <summary>How long one container inspect may hold its place among <see cref="MaxInspects"/>:
    /// dockerd answers an inspect only once it has the container's lock, which a start that never
    /// finishes keeps; without a limit, 16 such containers would stall every later inspect. The
    /// caller sees a failure and retries with its backoff.</summary>
    public TimeSpan InspectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public async Task<ContainerFacts?> InspectAsync(string id, CancellationToken ct)
    {
        ContainerInspectResponse c;
        await inspects.WaitAsync(ct);
        using (var limit = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            limit.CancelAfter(InspectTimeout);
            try { c = await Timed("container_inspect", () => client.Containers.InspectContainerAsync(id, limit.Token)); }
            catch (DockerContainerNotFoundException) { return null; }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"container inspect of {id[..Math.Min(12, id.Length)]} did not answer within {InspectTimeout.TotalSeconds:0} s");
            }
            finally { inspects.Release(); }
        }

        var attachments = ImmutableArray.CreateBuilder<NetworkAttachment>();
        foreach (var (name, endpoint) in c.NetworkSettings?.Networks ?? new Dictionary<string, EndpointSettings>())
        {
            var v4 = ParseAddress(endpoint.IPAddress);
            var v6 = ParseAddress(endpoint.GlobalIPv6Address);
            var (driver, bridge) = string.IsNullOrEmpty(endpoint.NetworkID) ? ("", null) : await KindOfAsync(endpoint.NetworkID, ct);
            attachments.Add(new NetworkAttachment(name, endpoint.NetworkID ?? "", v4, v6,
                endpoint.IPPrefixLen > 0 ? (int)endpoint.IPPrefixLen : 32,
                endpoint.GlobalIPv6PrefixLen > 0 ? (int)endpoint.GlobalIPv6PrefixLen : 128,
                driver, Mac(endpoint.MacAddress), bridge));
        }

        // A Swarm task on an overlay network reaches anything outside the overlay through a second
        // interface on docker_gwbridge, whose address container inspect does not list: without it
        // the task's outbound traffic would pass unfiltered (seen in the Swarm end-to-end test)
        if (c.Config?.Labels?.ContainsKey(SwarmTaskLabel) == true && attachments.All(a => a.Name != GatewayBridge) &&
            await InspectEndpointAsync(GatewayBridge, c.ID, ct) is { } gateway)
            attachments.Add(gateway);

        var ports = ImmutableArray.CreateBuilder<PublishedPort>();
        foreach (var (key, bindings) in c.NetworkSettings?.Ports ?? new Dictionary<string, IList<PortBinding>>())
        {
            if (bindings is null || !TryParsePortKey(key, out var port, out var proto)) continue;
            foreach (var b in bindings)
                if (ushort.TryParse(b.HostPort, out var hostPort))
                    ports.Add(new PublishedPort(port, proto, b.HostIP ?? "", hostPort));
        }

        var live = c.State?.Running == true || c.State?.Restarting == true ||
                   attachments.Any(a => a.IPv4 is not null || a.IPv6 is not null);
        return new ContainerFacts(
            c.ID,
            (c.Name ?? "").TrimStart('/'),
            live,
            (c.Config?.Labels ?? new Dictionary<string, string>()).ToImmutableDictionary(),
            attachments.ToImmutable(),
            ports.ToImmutable(),
            DnsServersOf(c, attachments),
            c.Config?.Image,
            string.IsNullOrEmpty(c.HostConfig?.NetworkMode) ? null : c.HostConfig.NetworkMode);
    }

    /// <summary>Where the container's DNS queries go, from what it cannot change (its
    /// <c>HostConfig.Dns</c>, the daemon's configuration, the host's resolvers).</summary>
    private ImmutableArray<IPAddress> DnsServersOf(ContainerInspectResponse c, IEnumerable<NetworkAttachment> networks)
    {
        var choice = ContainerResolvers.Choose(resolvers, c.HostConfig?.DNS?.ToList(), ContainerResolvers.UsesEmbeddedDns(networks), files.Read);
        if (choice.Problem is { } problem && problem != lastProblem) warn?.Invoke(problem);
        lastProblem = choice.Problem;
        return choice.Servers;
    }

    public async Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, CancellationToken ct) =>
        (await InspectNetworkAsync(networkId, ct))?.Endpoints.GetValueOrDefault(containerId);

    public Task<NetworkAttachment?> InspectEndpointAsync(string networkId, string containerId, long sentAfter, CancellationToken ct) =>
        Endpoints.FindAsync(networkId, containerId, sentAfter, ct);

    /// <summary>One network inspect: every endpoint on it (null: no such network).</summary>
    private async Task<NetworkView?> InspectNetworkAsync(string networkId, CancellationToken ct)
    {
        NetworkResponse network;
        try { network = await Timed("network_inspect", () => client.Networks.InspectNetworkAsync(networkId, ct)); }
        catch (DockerNetworkNotFoundException) { return null; }
        var kind = networkKinds[network.ID] = KindOf(network);
        var endpoints = ImmutableDictionary.CreateBuilder<string, NetworkAttachment>();
        foreach (var (id, ep) in network.Containers ?? new Dictionary<string, EndpointResource>())
            endpoints[id] = new NetworkAttachment(network.Name, network.ID, ParseAddress(StripPrefix(ep.IPv4Address)), ParseAddress(StripPrefix(ep.IPv6Address)),
                PrefixOf(ep.IPv4Address, 32), PrefixOf(ep.IPv6Address, 128), kind.Driver, Mac(ep.MacAddress), kind.Bridge);
        return new NetworkView(network.ID, endpoints.ToImmutable());
    }

    public async Task StreamEventsAsync(long sinceUnixNanos, Action<DockerEvent> onEvent, CancellationToken ct)
    {
        // A synchronous IProgress into a channel keeps Docker's order (Progress<T> would post
        // to the thread pool and could reorder events).
        var channel = Channel.CreateUnbounded<Message>(new UnboundedChannelOptions { SingleReader = true });
        var parameters = new ContainerEventsParameters
        {
            Since = $"{sinceUnixNanos / 1_000_000_000}.{sinceUnixNanos % 1_000_000_000:D9}",
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["type"] = new Dictionary<string, bool> { ["container"] = true, ["network"] = true },
            },
        };
        var pump = Task.Run(async () =>
        {
            try { await client.System.MonitorEventsAsync(parameters, new ChannelProgress(channel.Writer), ct); }
            finally { channel.Writer.TryComplete(); }
        }, ct);

        // events may have been lost since the last stream: no network answer from before is shared
        Endpoints.ForgetAll();
        await foreach (var message in channel.Reader.ReadAllAsync(ct))
            if (Translate(message) is { } e)
            {
                if (e is { Type: "network", Action: "destroy", NetworkId: { } gone })
                {
                    Endpoints.Forget(gone);
                    networkKinds.TryRemove(gone, out _);
                }
                onEvent(e);
            }
        await pump; // surfaces the stream's failure
    }

    private static DockerEvent? Translate(Message m)
    {
        var time = m.TimeNano ?? 0;
        if (m.Type == "container" && ContainerActions.Contains(m.Action ?? "") && m.Actor?.ID is { } id)
            return new DockerEvent(m.Type, m.Action!, id, time, null, m.Actor.Attributes?.ToDictionary());
        if (m.Type == "network" && m.Action is "create" or "destroy" && m.Actor?.ID is { } networkId)
            return new DockerEvent(m.Type, m.Action!, "", time, networkId);
        if (m.Type == "network" && m.Action is "connect" or "disconnect" &&
            m.Actor?.Attributes?.TryGetValue("container", out var cid) == true)
            return new DockerEvent(m.Type, m.Action!, cid!, time, m.Actor.ID);
        return null;
    }

    private static bool TryParsePortKey(string key, out ushort port, out L4Proto proto)
    {
        proto = L4Proto.Tcp;
        var parts = key.Split('/');
        if (!ushort.TryParse(parts[0], out port)) return false;
        if (parts.Length < 2) return true;
        switch (parts[1])
        {
            case "tcp": proto = L4Proto.Tcp; return true;
            case "udp": proto = L4Proto.Udp; return true;
            default: return false; // sctp: not expressible yet
        }
    }

    private static IPAddress? ParseAddress(string? text) =>
        !string.IsNullOrEmpty(text) && Addresses.TryParse(text, out var a) ? a : null;

    private static string? StripPrefix(string? cidr) => cidr?.Split('/')[0];

    private static string? Mac(string? mac) => string.IsNullOrEmpty(mac) ? null : mac.ToLowerInvariant();

    private static int PrefixOf(string? cidr, int fallback) =>
        cidr?.Split('/') is [_, var len] && int.TryParse(len, out var n) ? n : fallback;

    public void Dispose() => client.Dispose(); // the semaphore holds no handle (no AvailableWaitHandle): nothing to free

    /// <summary>Small host files (daemon.json, resolv.conf) read at most every 2 s each.</summary>
    private sealed class HostFiles
    {
        private const long MaxBytes = 1 << 20;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long At, string? Text)> cache = new();

        public string? Read(string path)
        {
            var now = Environment.TickCount64;
            if (cache.TryGetValue(path, out var c) && now - c.At < 2000) return c.Text;
            string? text;
            try
            {
                var info = new FileInfo(path);
                text = info.Exists && info.Length <= MaxBytes ? File.ReadAllText(path) : null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { text = null; }
            cache[path] = (now, text);
            return text;
        }
    }

    private sealed class ChannelProgress(ChannelWriter<Message> writer) : IProgress<Message>
    {
        public void Report(Message value) => writer.TryWrite(value);
    }
}
