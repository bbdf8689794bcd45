using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using static WhaleWall.Actors.Containers.ContainerInputs;
using static WhaleWall.Actors.Containers.ContainerLifecycleEvents;
using LearnedByHost = System.Collections.Immutable.ImmutableDictionary<string,
    System.Collections.Immutable.ImmutableDictionary<System.Net.IPAddress, System.DateTimeOffset>>;

namespace WhaleWall.Actors.Containers;

/// <summary>Addresses the DNS proxy learned from the container's own lookups
/// (docs/dns-proxy.md): kept by the rule's <c>hosts:</c> entry, compiled like the daemon's own
/// resolutions, pruned by time whenever the container compiles, never allowed to push its
/// compile over the element limit, and answered as committed only when the wish the writer
/// applied carries them.</summary>
public sealed partial record ContainerLifecycle
{
    /// <summary>Drops the learned addresses whose expiry has passed at <paramref name="now"/> (the
    /// kernel has timed them out): they are never compiled again, e.g. after a die + start.
    /// Returns whether anything was dropped.</summary>
    private static bool PruneLearned(ContainerLifecycle s, DateTimeOffset now, Action<IContainerEvent> emit)
    {
        if (!s.Learned.Values.Any(a => a.Values.Any(e => e <= now))) return false;
        emit(new AddressesLearned(LearnedMap.Alive(s.Learned, now)));
        return true;
    }

    /// <summary>A learn request: the batch's addresses are added (renewals never shorten) and the
    /// container settles. New addresses that would make its compile fail (its element limit
    /// counts addresses x ports, the proxy's caps only addresses) are refused, as the proxy's own
    /// caps refuse them: the container keeps its policy, renewals still go, and the request is
    /// answered with an error. A batch that renews nothing (the kernel already holds every
    /// address at least as long, so the answer's TTL, capped by the proxy below the kernel
    /// timeout, is covered) compiles and sends nothing. The answer waits for the writer's
    /// <c>Applied</c> of a wish that carries the addresses (at once when it is applied already).</summary>
    /// <param name="settle">settle even when the batch changes nothing (something else changed)</param>
    private static List<IContainerEvent> Learn(ContainerLifecycle s0, LearnRequested l, bool settle)
    {
        var events = new List<IContainerEvent>();
        var s = s0;
        void Emit(IContainerEvent e)
        {
            events.Add(e);
            s = s.Apply(e);
        }
        void Undo()
        {
            events.Clear();
            s = s0;
        }

        var addresses = l.Command.Batch.Addresses.Select(a => a.Address).ToImmutableArray();
        if (LearnedFrom(s, l.Command, renewalsOnly: false) is not { } learned)
        {
            Emit(new LearnAnswered(l.ReplyTo, "the container is not proxied"));
            return events;
        }
        string? refused = null;
        // the kernel already holds every address at least as long (a caching resolver counts
        // the TTL down: the same expiry again): nothing to compile, nothing to send
        if (SameLearned(learned, s.Learned))
        {
            if (settle) Settle(s, Emit);
        }
        else
        {
            Emit(new AddressesLearned(learned));
            Settle(s, Emit);
        }
        if (s.CompileError is { } error && events.Any(e => e is AddressesLearned))
        {
            refused = error;
            Undo();
            var renewed = LearnedFrom(s, l.Command, renewalsOnly: true)!;
            if (!SameLearned(renewed, s.Learned)) Emit(new AddressesLearned(renewed));
            Settle(s, Emit);
            // not even the renewals compile (they can change how overlaps split): nothing of the batch
            if (s.CompileError is not null && events.Any(e => e is AddressesLearned))
            {
                Undo();
                Settle(s, Emit);
            }
        }

        if (CarriedOrWhy(s.Kernel.Sent, addresses) is { } why)
            Emit(new LearnAnswered(l.ReplyTo, refused is null ? why : "refused, the container's rules would not compile with them: " + refused));
        else if (s.Kernel.Confirmed >= s.Kernel.Version) Emit(new LearnAnswered(l.ReplyTo, null));
        else Emit(new LearnAwaited(l.ReplyTo, s.Kernel.Version, addresses));
        return events;
    }

    /// <summary>Null when <paramref name="fragment"/> is a proxied container's and carries every
    /// address (an <c>outh*</c> element whose destination holds it), else why not. An address of
    /// a family the container has no address of cannot be carried and is not asked for (an AAAA
    /// answer to a container without IPv6 opens nothing and harms nothing).</summary>
    private static string? CarriedOrWhy(Fragment? fragment, ImmutableArray<IPAddress> addresses)
    {
        if (fragment is null) return "nothing is sent to the kernel";
        if (!fragment.Elements.Any(e => e.Set is DnsProxyLayout.Set4 or DnsProxyLayout.Set6))
            return "the container is not proxied (not running, or its rules fail closed)";
        foreach (var address in addresses)
        {
            var range = AddressRange.Single(address);
            var family = range.Family;
            if (!fragment.Elements.Any(e => e.Set == NftSets.Managed(family))) continue;
            var hosts = NftSets.OutHosts(family);
            if (!fragment.Elements.Any(e => e.Set == hosts && e.Fields[1].Lo <= range.Lo && range.Lo <= e.Fields[1].Hi))
                return $"its rules do not hold {address} (not proxied, not running, or refused)";
        }
        return null;
    }

    /// <summary>The addresses a DNS answer opens for the container: for each <c>hosts:</c> entry of
    /// its rules that matches a name the proxy allowed (the query name or a CNAME on its chain),
    /// every address of the batch (only those it already holds with
    /// <paramref name="renewalsOnly"/>), expiring at its time + timeout (a renewal never
    /// shortens). Null when the container is not proxied.</summary>
    private static LearnedByHost? LearnedFrom(ContainerLifecycle s, ContainerCommands.LearnAddresses l, bool renewalsOnly)
    {
        if (s.Decision.Dns is null || s.Facts is null) return null;
        var now = l.Now;
        var learned = LearnedMap.Alive(s.Learned, now).ToBuilder();
        foreach (var host in s.Decision.Policy.EffectivePolicy.Output.SelectMany(r => r.HostsOrEmpty).Distinct())
        {
            if (!Firewall.Names.NamePattern.TryParse(host, out var pattern, out _) || !l.Batch.AllowedNames.Any(pattern.Matches)) continue;
            var forHost = (learned.GetValueOrDefault(host) ?? ImmutableDictionary<IPAddress, DateTimeOffset>.Empty).ToBuilder();
            foreach (var a in l.Batch.Addresses)
            {
                var expires = now + a.Timeout;
                var known = forHost.TryGetValue(a.Address, out var old);
                if (renewalsOnly && !known) continue;
                if (!known || old < expires) forHost[a.Address] = expires;
            }
            if (forHost.Count > 0) learned[host] = forHost.ToImmutable();
        }
        return learned.ToImmutable();
    }

    private static bool SameLearned(LearnedByHost a, LearnedByHost b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var other) && other.Count == kv.Value.Count &&
                                           kv.Value.All(e => other.TryGetValue(e.Key, out var until) && until == e.Value));
}
