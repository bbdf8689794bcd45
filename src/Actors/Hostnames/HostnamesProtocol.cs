using System.Collections.Immutable;

namespace WhaleWall.Actors.Hostnames;

/// <summary>How names are resolved: TTLs are clamped to [MinTtl, MaxTtl]; an address stays
/// trusted for its TTL plus Grace (also across DNS failures); at most MaxAddresses per name (by
/// default the number a label's host name is counted as, PolicySize.MaxAddressesPerHost).</summary>
public sealed record DnsSettings(TimeSpan MinTtl, TimeSpan MaxTtl, TimeSpan Grace, int MaxAddresses = WhaleWall.Firewall.Policy.PolicySize.MaxAddressesPerHost)
{
    public static readonly DnsSettings Default = new(TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), TimeSpan.FromSeconds(30));

    /// <summary>How long one DNS query may wait for its answer. A name is asked again at half its
    /// TTL and its addresses last TTL + grace, so a renewal has half the TTL plus the grace to land:
    /// a quarter of the shortest such slack (0.25-2 s), so that a lost answer and its retry still
    /// renew an address before it lapses (2 s with the defaults; with a 1 s TTL and 2 s grace,
    /// 0.625 s instead of a 2 s wait that left half a second).</summary>
    public TimeSpan LookupTimeout =>
        TimeSpan.FromTicks(Math.Clamp((MinTtl / 2 + Grace).Ticks / 4, TimeSpan.FromMilliseconds(250).Ticks, TimeSpan.FromSeconds(2).Ticks));
}

public static class HostnamesCommands
{
    /// <summary>The sender (the actor of container <paramref name="Container"/>) wants these
    /// names resolved, and no others (empty: none).</summary>
    public sealed record Subscribe(ImmutableHashSet<string> Names, string Container = "");
}

/// <summary>Where the current picture of every name goes (for `whalewall status`).</summary>
public interface IHostnameReport
{
    void Write(IReadOnlyList<HostnameReportEntry> names);
}

public sealed record HostnameReportEntry(string Name, ImmutableArray<(System.Net.IPAddress Address, DateTimeOffset Expires)> Addresses,
    ImmutableArray<string> Containers);

public static class HostnamesEvents
{
    /// <summary>Pushed to subscribers whenever a name's addresses or their expiry change.</summary>
    public sealed record AddressesChanged(WhaleWall.Firewall.Policy.HostAddresses Host);
}
