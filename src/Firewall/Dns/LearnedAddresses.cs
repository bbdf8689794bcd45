using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Dns;

/// <summary>TTL handling and caps, from the environment (<c>WHALEWALL_DNS_MIN_TTL</c>,
/// <c>_MAX_TTL</c>, <c>_GRACE</c>) and the proxy's own limits.</summary>
public sealed record LearningLimits(
    TimeSpan MinTtl,
    TimeSpan MaxTtl,
    TimeSpan Grace,
    int PerName = 32,
    int PerContainer = 1024)
{
    public static readonly LearningLimits Default = new(TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), TimeSpan.FromSeconds(30));

    /// <summary>How long the kernel keeps an address: the clamped TTL plus the grace.</summary>
    public TimeSpan KernelTimeout(uint ttlSeconds)
    {
        var ttl = TimeSpan.FromSeconds(ttlSeconds);
        if (ttl < MinTtl) ttl = MinTtl;
        if (ttl > MaxTtl) ttl = MaxTtl;
        return ttl + Grace;
    }
}

/// <summary>One address to commit: the kernel timeout it gets from now on.</summary>
public sealed record LearnedAddress(IPAddress Address, TimeSpan Timeout);

/// <summary>What one answer teaches: the addresses to put into the kernel (new ones and
/// renewals, with their timeouts) and those refused because a cap is full.</summary>
public sealed record LearnPlan(
    DnsName Name,
    ImmutableArray<LearnedAddress> Commit,
    ImmutableArray<IPAddress> RefusedByCap)
{
    public bool IsEmpty => Commit.IsEmpty;
}

/// <summary>
/// The addresses a container has learned through its own lookups, each with the moment the
/// kernel lets it go (immutable; time is passed in). Caps count every address not yet expired,
/// old ones included. At a cap the proxy refuses NEW addresses (fail closed: nothing more
/// opens, nothing the container relies on is evicted early); renewals of known addresses
/// always pass. An answer whose addresses are all refused is answered SERVFAIL, and an answer
/// is only ever released with the addresses that were committed.
/// </summary>
public sealed record LearnedAddresses(ImmutableDictionary<DnsName, ImmutableDictionary<IPAddress, DateTimeOffset>> ByName)
{
    public static readonly LearnedAddresses Empty = new(ImmutableDictionary<DnsName, ImmutableDictionary<IPAddress, DateTimeOffset>>.Empty);

    /// <summary>Addresses learned before the daemon restarted (still in the kernel until their
    /// expiry; the names they were asked for are not kept, only the rules' <c>hosts:</c>
    /// entries). They count against the per-container cap until they expire or are learned
    /// again (then they count under their name), so a restart never doubles the cap.</summary>
    public ImmutableDictionary<IPAddress, DateTimeOffset> Carried { get; init; } = ImmutableDictionary<IPAddress, DateTimeOffset>.Empty;

    /// <summary>The state after a restart: <paramref name="carried"/> (address -> expiry) counted, nothing by name yet.</summary>
    public static LearnedAddresses Restored(IEnumerable<KeyValuePair<IPAddress, DateTimeOffset>> carried)
    {
        var builder = ImmutableDictionary.CreateBuilder<IPAddress, DateTimeOffset>();
        foreach (var (address, expiry) in carried)
            if (!builder.TryGetValue(address, out var known) || known < expiry) builder[address] = expiry;
        return Empty with { Carried = builder.ToImmutable() };
    }

    public int Count(DateTimeOffset now) => ByName.Values.Sum(a => a.Values.Count(e => e > now)) + Carried.Values.Count(e => e > now);

    /// <summary>Drops what the kernel has already expired.</summary>
    public LearnedAddresses Prune(DateTimeOffset now)
    {
        var builder = ByName.ToBuilder();
        foreach (var (name, addresses) in ByName)
        {
            var alive = addresses.Where(a => a.Value > now).ToImmutableDictionary();
            if (alive.IsEmpty) builder.Remove(name);
            else if (alive.Count != addresses.Count) builder[name] = alive;
        }
        var carried = Carried.IsEmpty || Carried.Values.All(e => e > now) ? Carried : Carried.Where(a => a.Value > now).ToImmutableDictionary();
        return new LearnedAddresses(builder.ToImmutable()) { Carried = carried };
    }

    /// <summary>Plans one answer for <paramref name="name"/> (the question name) and returns
    /// the state as it will be once the plan is committed.</summary>
    public (LearnPlan Plan, LearnedAddresses Next) Learn(
        DnsName name, IReadOnlyList<(IPAddress Address, uint Ttl)> addresses, LearningLimits limits, DateTimeOffset now)
    {
        var state = Prune(now);
        var carried = state.Carried.ToBuilder();
        var total = state.ByName.Values.Sum(a => a.Count) + carried.Count;
        var known = state.ByName.GetValueOrDefault(name) ?? ImmutableDictionary<IPAddress, DateTimeOffset>.Empty;
        var forName = known.ToBuilder();
        var commit = ImmutableArray.CreateBuilder<LearnedAddress>();
        var refused = ImmutableArray.CreateBuilder<IPAddress>();
        foreach (var (address, ttl) in addresses)
        {
            var timeout = limits.KernelTimeout(ttl);
            var expiry = now + timeout;
            if (forName.TryGetValue(address, out var current))
            {
                // a renewal never shortens what the kernel already holds
                if (expiry > current) forName[address] = expiry;
                commit.Add(new LearnedAddress(address, (expiry > current ? expiry : current) - now));
                continue;
            }
            // an address carried over a restart is already counted: it moves under its name
            var wasCarried = carried.TryGetValue(address, out var carriedUntil) && carried.Remove(address);
            if (wasCarried) total--;
            if (forName.Count >= limits.PerName || total >= limits.PerContainer)
            {
                if (wasCarried)
                {
                    carried[address] = carriedUntil;
                    total++;
                }
                refused.Add(address);
                continue;
            }
            forName[address] = expiry;
            total++;
            commit.Add(new LearnedAddress(address, timeout));
        }
        var next = forName.Count == 0 ? state : new LearnedAddresses(state.ByName.SetItem(name, forName.ToImmutable())) { Carried = carried.ToImmutable() };
        return (new LearnPlan(name, commit.ToImmutable(), refused.ToImmutable()), next);
    }
}
