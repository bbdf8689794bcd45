using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Tests;

/// <summary>Builders for container facts in tests.</summary>
public static class Facts
{
    /// <summary>An element of the drop-count sets (dropout*/dropin*): one per managed address,
    /// checked by their own test, left out of the element lists the other tests compare.</summary>
    public static bool IsDropCounter(WhaleWall.Firewall.Nft.Element e) =>
        e.Set.StartsWith("dropout", StringComparison.Ordinal) || e.Set.StartsWith("dropin", StringComparison.Ordinal);

    public static ContainerFacts Container(string name, string ipv4, string? rules = null, bool enabled = true,
        string network = "net", string? ipv6 = null, IEnumerable<PublishedPort>? ports = null,
        IDictionary<string, string>? labels = null)
    {
        var all = new Dictionary<string, string>(labels ?? new Dictionary<string, string>());
        if (enabled) all[LabelKeys.Enabled] = "true";
        if (rules is not null) all[LabelKeys.Rules] = rules;
        return new ContainerFacts(name + "-id", name, true, all.ToImmutableDictionary(),
            [new NetworkAttachment(network, network + "-id", IPAddress.Parse(ipv4), ipv6 is null ? null : IPAddress.Parse(ipv6))],
            [.. ports ?? []]);
    }
}
