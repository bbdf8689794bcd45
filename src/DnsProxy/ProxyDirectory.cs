using System.Collections.Concurrent;
using System.Net;

namespace WhaleWall.DnsProxy;

/// <summary>The address -> container map the proxy reads on every query, written only by
/// container actors: <see cref="Register"/> before the container's <c>dnsproxy*</c> element is
/// committed, <see cref="Unregister"/> after it is deleted. Unregistering names the owner, so
/// a container that goes never removes the entry of a newer container that reused its address.</summary>
public sealed class ProxyDirectory : IProxyDirectory
{
    private readonly ConcurrentDictionary<IPAddress, ProxyClient> clients = new();

    public ProxyClient? Find(IPAddress source) =>
        clients.GetValueOrDefault(source.IsIPv4MappedToIPv6 ? source.MapToIPv4() : source);

    public void Register(IPAddress address, ProxyClient client) => clients[address] = client;

    /// <summary>Removes the entry only while it still belongs to <paramref name="containerId"/>.</summary>
    public bool Unregister(IPAddress address, string containerId)
    {
        while (clients.TryGetValue(address, out var current))
        {
            if (current.ContainerId != containerId) return false;
            if (clients.TryRemove(new KeyValuePair<IPAddress, ProxyClient>(address, current))) return true;
        }
        return false;
    }

    public int Count => clients.Count;
}
