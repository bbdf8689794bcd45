using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Dns;

/// <summary>A question as it came off the wire: the name as the library decoded it.</summary>
public sealed record DnsQuestion(string Name, ushort Type, ushort Class);

/// <summary>What the proxy does with a container's query.</summary>
public abstract record QueryDecision
{
    private QueryDecision() { }

    /// <summary>Ask the container's upstream resolvers. <see cref="NameAllowed"/>: the
    /// question name itself is in the container's rules (a CNAME target may still be).</summary>
    public sealed record Forward(DnsName Name, ushort Type, bool NameAllowed) : QueryDecision
    {
        /// <summary>Audit mode: why the policy would have refused it (it is forwarded anyway).</summary>
        public string? WouldRefuse { get; init; }
    }

    /// <summary>Answer at once with <see cref="Rcode"/>; nothing is forwarded.</summary>
    public sealed record Refuse(DnsRcode Rcode, string Reason) : QueryDecision;
}

/// <summary>The per-container query decision (pure).</summary>
public static class QueryDecider
{
    public const int OpcodeQuery = 0;

    public static QueryDecision Decide(DnsPolicy policy, int opcode, IReadOnlyList<DnsQuestion> questions)
    {
        if (opcode != OpcodeQuery) return new QueryDecision.Refuse(DnsRcode.NotImp, $"opcode {opcode} is not a query");
        if (questions.Count != 1) return new QueryDecision.Refuse(DnsRcode.FormErr, $"{questions.Count} questions (one is allowed)");
        var question = questions[0];
        if (question.Class != DnsTypes.ClassIn) return new QueryDecision.Refuse(DnsRcode.Refused, $"class {question.Class} is not IN");
        if (!DnsName.TryParse(question.Name, out var name, out var why))
            return new QueryDecision.Refuse(policy.RejectRcode, $"not a name WhaleWall resolves: {why}");
        var allowed = policy.Names.Matches(name);
        string? refusal = null;
        if (!policy.AllowsType(question.Type))
            refusal = $"query type {DnsTypes.Name(question.Type)} is not allowed (whalewall.dns.types)";
        else if (!allowed && !policy.ResolveAny)
            refusal = $"{name} is not in the container's rules";
        if (refusal is null) return new QueryDecision.Forward(name, question.Type, allowed);
        // audit mode: forwarded, counted as a would-be refusal
        if (policy.Audit) return new QueryDecision.Forward(name, question.Type, allowed) { WouldRefuse = refusal };
        return new QueryDecision.Refuse(refusal.StartsWith("query type", StringComparison.Ordinal) ? DnsRcode.Refused : policy.RejectRcode, refusal);
    }
}
