using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Dns;

/// <summary>The part of an answer that counts: the chain from the question name through
/// CNAMEs to the final name, and the final name's addresses with the TTL each may be trusted
/// (the smallest TTL along the chain). Records are named by their index in the answer
/// section; <see cref="Others"/> are records of another allowed question type (HTTPS, SRV,
/// ...) owned by the final name: passed on, never learned from.</summary>
public sealed record AnswerChain(
    ImmutableArray<DnsName> Names,
    ImmutableArray<int> Cnames,
    ImmutableArray<(IPAddress Address, uint Ttl, int Index)> Addresses,
    ImmutableArray<int> Others);

/// <summary>
/// Pure checks of upstream answers. An answer is data from the network: it belongs to a
/// query only when id, question (name, type, class) and sender all match; inside it only
/// the CNAME chain that starts at the question name counts, each step linked to the one
/// before (extra records, however plausible, are ignored, so they cannot poison anything).
/// </summary>
public static class AnswerCheck
{
    /// <summary>Longest CNAME chain followed (steps); longer chains are refused.</summary>
    public const int MaxChain = 8;

    /// <summary>Answer records read at most; a bigger answer is refused before any work.</summary>
    public const int MaxRecords = 512;

    /// <summary>Null when <paramref name="answer"/> answers <paramref name="sent"/>; otherwise
    /// why the datagram is ignored (the proxy keeps waiting for the real one).</summary>
    public static string? Mismatch(SentQuery sent, UpstreamAnswer answer)
    {
        if (!SameEndpoint(answer.From, sent.Upstream)) return $"from {answer.From}, not the upstream {sent.Upstream}";
        if (!answer.IsResponse) return "not a response";
        if (answer.Id != sent.Id) return $"id {answer.Id} is not the query's {sent.Id}";
        if (answer.Questions.Count != 1) return $"{answer.Questions.Count} questions in the answer";
        var q = answer.Questions[0];
        if (q.Type != sent.Type || q.Class != DnsTypes.ClassIn) return "the answer's question type or class differs";
        if (!DnsName.TryParse(q.Name, out var name, out _) || name != sent.Name) return "the answer's question name differs";
        return null;
    }

    /// <summary>Follows the chain of an answer that <see cref="Mismatch"/> accepted. An error
    /// (loop, too long, two CNAMEs for one name, too many records) means nothing is learned and
    /// the container gets SERVFAIL.</summary>
    public static (AnswerChain? Chain, string? Error) Follow(SentQuery sent, UpstreamAnswer answer)
    {
        if (answer.Answers.Count > MaxRecords) return (null, $"{answer.Answers.Count} answer records (at most {MaxRecords})");
        var cnames = new Dictionary<DnsName, int>();
        for (var i = 0; i < answer.Answers.Count; i++)
        {
            var record = answer.Answers[i];
            if (record.Type != DnsTypes.CNAME || record.Class != DnsTypes.ClassIn) continue;
            if (!DnsName.TryParse(record.Name, out var owner, out _)) continue; // cannot be on the chain
            if (!cnames.TryAdd(owner, i))
                return (null, $"two CNAMEs for {owner}");
        }

        var names = ImmutableArray.CreateBuilder<DnsName>();
        var chain = ImmutableArray.CreateBuilder<int>();
        var current = sent.Name;
        var ttl = uint.MaxValue;
        names.Add(current);
        // a CNAME question is answered by the CNAME itself: no chain to follow
        while (sent.Type != DnsTypes.CNAME && cnames.TryGetValue(current, out var cnameIndex))
        {
            var cname = answer.Answers[cnameIndex];
            if (chain.Count == MaxChain) return (null, $"CNAME chain longer than {MaxChain}");
            if (!DnsName.TryParse(cname.Target, out var target, out _)) return (null, "a CNAME target is not a valid name");
            if (names.Contains(target)) return (null, $"CNAME loop at {target}");
            chain.Add(cnameIndex);
            names.Add(target);
            ttl = Math.Min(ttl, cname.Ttl);
            current = target;
        }

        var family = sent.Type switch
        {
            DnsTypes.A => AddressFamily.InterNetwork,
            DnsTypes.AAAA => AddressFamily.InterNetworkV6,
            _ => AddressFamily.Unknown,
        };
        var addresses = ImmutableArray.CreateBuilder<(IPAddress, uint, int)>();
        var others = ImmutableArray.CreateBuilder<int>();
        var seen = new HashSet<IPAddress>();
        for (var i = 0; i < answer.Answers.Count; i++)
        {
            var record = answer.Answers[i];
            if (record.Type != sent.Type || record.Class != DnsTypes.ClassIn) continue;
            if (!DnsName.TryParse(record.Name, out var owner, out _) || owner != current) continue;
            if (family == AddressFamily.Unknown)
            {
                others.Add(i);
                continue;
            }
            if (record.Address is null || record.Address.AddressFamily != family) continue;
            if (!Learnable(record.Address) || !seen.Add(record.Address)) continue;
            addresses.Add((record.Address, Math.Min(ttl, record.Ttl), i));
        }
        return (new AnswerChain(names.ToImmutable(), chain.ToImmutable(), addresses.ToImmutable(), others.ToImmutable()), null);
    }

    /// <summary>Addresses never worth opening: unspecified, broadcast, multicast, loopback
    /// (a container's loopback never reaches the host's table anyway).</summary>
    public static bool Learnable(IPAddress address)
    {
        if (IPAddress.IsLoopback(address) || address.IsIPv6Multicast) return false;
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast)) return false;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var first = address.GetAddressBytes()[0];
            if (first == 0 || first >= 224) return false; // 0/8, multicast, reserved
        }
        return true;
    }

    private static bool SameEndpoint(IPEndPoint a, IPEndPoint b) =>
        a.Port == b.Port && Normal(a.Address).Equals(Normal(b.Address));

    private static IPAddress Normal(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;
}
