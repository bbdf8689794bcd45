using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Dns;

/// <summary>What the kernel must hold before the answer is released: these addresses of
/// <see cref="QueryName"/>, allowed because the chain's <see cref="AllowedNames"/> are in the
/// container's rules (the container actor opens them with the ports of the rules that name
/// them, as that container's own elements, each with its timeout).</summary>
public sealed record LearnedBatch(
    DnsName QueryName,
    ImmutableArray<DnsName> AllowedNames,
    ImmutableArray<LearnedAddress> Addresses);

/// <summary>What goes back to the container, and what must be committed first.</summary>
public abstract record AnswerDecision
{
    private AnswerDecision() { }

    /// <summary>Answer with <see cref="Rcode"/> and the answer records at <see cref="Keep"/>
    /// (indexes into the upstream answer section, in order), their TTLs capped at
    /// <see cref="MaxTtl"/>, once <see cref="Commit"/> (when not null) is in the kernel.</summary>
    public sealed record Release(
        DnsRcode Rcode,
        ImmutableArray<int> Keep,
        uint MaxTtl,
        LearnedBatch? Commit,
        ImmutableArray<IPAddress> RefusedByCap) : AnswerDecision;

    /// <summary>SERVFAIL: the answer was unusable or nothing in it could be opened.</summary>
    public sealed record Fail(string Reason) : AnswerDecision;
}

/// <summary>
/// Pure: from an upstream answer that belongs to the query, what the container gets.
/// Addresses open when ANY name on the CNAME chain is in the container's rules (a rule on a
/// CNAME target matches, unlike Cilium's, which ties addresses to the query name). Only the
/// chain goes back (records off the chain are dropped), and the released answer never
/// carries an address the kernel was not told about.
/// </summary>
public static class AnswerDecider
{
    public static (AnswerDecision Decision, LearnedAddresses Next) Decide(
        DnsPolicy policy, QueryDecision.Forward query, SentQuery sent, UpstreamAnswer answer,
        LearnedAddresses learned, LearningLimits limits, DateTimeOffset now)
    {
        // the answer's TTL never outlives what the kernel will hold
        var maxTtl = (uint)limits.MaxTtl.TotalSeconds;
        if (answer.Rcode is not DnsRcode.NoError)
            return (new AnswerDecision.Release(answer.Rcode, [], maxTtl, null, []), learned);
        var (chain, error) = AnswerCheck.Follow(sent, answer);
        if (chain is null) return (new AnswerDecision.Fail(error!), learned);

        var allowedNames = chain.Names.Where(policy.Names.Matches).ToImmutableArray();
        if (allowedNames.IsEmpty || chain.Addresses.IsEmpty)
        {
            // a name the container may resolve but not reach (resolve-any), or an answer
            // without addresses (NODATA, an allowed extra type): nothing opens
            var all = chain.Cnames.AddRange(chain.Addresses.Select(a => a.Index)).AddRange(chain.Others);
            return (new AnswerDecision.Release(DnsRcode.NoError, all, maxTtl, null, []), learned);
        }

        var (plan, next) = learned.Learn(query.Name, chain.Addresses.Select(a => (a.Address, a.Ttl)).ToArray(), limits, now);
        if (plan.IsEmpty)
            return (new AnswerDecision.Fail($"address cap reached ({limits.PerName} per name, {limits.PerContainer} per container)"), next);
        var committed = plan.Commit.Select(c => c.Address).ToHashSet();
        var keep = chain.Cnames.AddRange(chain.Addresses.Where(a => committed.Contains(a.Address)).Select(a => a.Index));
        var batch = new LearnedBatch(query.Name, allowedNames, plan.Commit);
        return (new AnswerDecision.Release(DnsRcode.NoError, keep, maxTtl, batch, plan.RefusedByCap), next);
    }
}
