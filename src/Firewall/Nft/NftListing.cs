using System.Text.Json;

namespace WhaleWall.Firewall.Nft;

/// <summary>Reads what libnftables prints for <c>list table</c> (JSON).</summary>
public static class NftListing
{
    public static IEnumerable<string> ChainNames(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var names = new List<string>();
        if (!doc.RootElement.TryGetProperty("nftables", out var items)) return names;
        foreach (var item in items.EnumerateArray())
            if (item.TryGetProperty("chain", out var chain) && chain.TryGetProperty("name", out var name))
                names.Add(name.GetString()!);
        return names;
    }

    public static bool IsRuleChain(string name) =>
        NftLayout.OwnChainPrefixes.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal));
}
