using System.Net;
using System.Net.Sockets;
using WhaleWall.Firewall.Dns;

namespace WhaleWall.DnsProxy;

/// <summary>A container as the proxy sees it: who, its DNS policy, and the resolvers its
/// queries go to (from what the container cannot write: its <c>HostConfig.Dns</c>, the
/// Docker daemon's DNS, or WhaleWall's <c>WHALEWALL_DNS_SERVERS</c>).</summary>
public sealed record ProxyClient(string ContainerId, DnsPolicy Policy, IReadOnlyList<IPEndPoint> Upstreams);

/// <summary>Who sent a query: the container whose address it is (issue 13 binds addresses to
/// bridge ports, so a source address identifies one container). Null: nobody WhaleWall
/// proxies for (the answer is REFUSED).</summary>
public interface IProxyDirectory
{
    ProxyClient? Find(IPAddress source);
}

/// <summary>The seam to the kernel: completes when the container's elements for these
/// addresses are committed (the container actor builds them, the writer commits them). The
/// proxy waits for it without a timeout: a slow commit delays the answer, it never releases
/// it early. A fault means "not committed": the container gets SERVFAIL.</summary>
public interface ILearnedAddresses
{
    Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation);
}

/// <summary>What the proxy did, for metrics and logs (bounded values: container id and
/// outcome, never names).</summary>
public interface IDnsProxyObserver
{
    void Answered(string? containerId, ProxyOutcome outcome, TimeSpan total, TimeSpan upstream, string? reason);

    /// <summary>The addresses released to the container for the name it asked (flow learning
    /// names its destinations with them). Default: ignored.</summary>
    void Resolved(string containerId, string name, IReadOnlyList<(IPAddress Address, TimeSpan Ttl)> addresses) { }
}

public enum ProxyOutcome
{
    /// <summary>Forwarded, answered, addresses (if any) committed first.</summary>
    Allowed,
    /// <summary>Answered without forwarding (name not allowed, type, malformed).</summary>
    Refused,
    /// <summary>Over the container's query rate.</summary>
    RateLimited,
    /// <summary>Upstream failed or its answer was unusable, or the cap or the commit failed.</summary>
    Failed,
    /// <summary>The source is no container the proxy serves.</summary>
    UnknownSource,
    /// <summary>Audit mode: the policy would have refused it; forwarded and answered anyway.</summary>
    AuditRefused,
}

/// <summary>Makes the sockets the proxy talks upstream with (tests make them inside a
/// network namespace).</summary>
public delegate Socket SocketFactory(AddressFamily family, SocketType type, ProtocolType protocol);

public sealed record DnsProxyOptions(
    IReadOnlyList<IPEndPoint> Listen,
    LearningLimits Limits,
    RateLimit Rate,
    TimeSpan UpstreamTimeout)
{
    public const int DefaultPort = 15353;

    public static DnsProxyOptions Default => new(
        [new IPEndPoint(IPAddress.IPv6Any, DefaultPort)],
        LearningLimits.Default, RateLimit.Default, TimeSpan.FromSeconds(2));
}
