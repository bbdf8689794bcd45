using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Dns;

namespace WhaleWall.Actors.Containers;

/// <summary>The DNS proxy's directory of containers as container actors write it
/// (docs/dns-proxy.md, "Identity"): the Host implements it over <c>WhaleWall.DnsProxy</c>'s
/// <c>ProxyDirectory</c>, so this project stays free of the proxy's libraries. Written only by
/// container actors: <see cref="Register"/> before the container's <c>dnsproxy*</c> element is
/// sent to the writer, <see cref="Unregister"/> when its address stops being proxied (never
/// removing a newer owner of a reused address), <see cref="Forget"/> when it is gone.</summary>
public interface IDnsProxyClients
{
    /// <param name="resolvers">the container's resolvers as WhaleWall knows them (never a file the container can write).</param>
    void Register(string containerId, IPAddress address, DnsPolicy policy, ImmutableArray<IPAddress> resolvers);

    void Unregister(string containerId, IPAddress address);

    void Forget(string containerId);

    /// <summary>Start-up: what the container had learned before the daemon restarted (by
    /// <c>hosts:</c> entry; still in the kernel), so the proxy's caps count it.</summary>
    void Restore(string containerId, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> learned);
}
