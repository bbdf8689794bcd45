using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;

namespace WhaleWall.Tests.Dns;

internal static class DnsTestData
{
    public static readonly IPEndPoint Upstream = new(IPAddress.Parse("198.18.20.2"), 53);

    public static DnsPolicy Policy(params string[] patterns) =>
        new(new NameMatcher(patterns.Select(NamePattern.Parse)), false, RejectMode.Refused, []);

    public static DnsPolicy ResolveAny(params string[] patterns) => Policy(patterns) with { ResolveAny = true };

    public static SentQuery Sent(string name, ushort type = DnsTypes.A, ushort id = 4242) =>
        new(id, DnsName.Parse(name), type, Upstream);

    public static DnsRecord A(string name, string address, uint ttl = 60) =>
        new(name, IPAddress.Parse(address).AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? DnsTypes.A : DnsTypes.AAAA,
            DnsTypes.ClassIn, ttl, IPAddress.Parse(address));

    public static DnsRecord Cname(string name, string target, uint ttl = 60) =>
        new(name, DnsTypes.CNAME, DnsTypes.ClassIn, ttl, Target: target);

    public static UpstreamAnswer Answer(SentQuery sent, params DnsRecord[] records) =>
        new(sent.Id, true, DnsRcode.NoError, false, [new DnsQuestion(sent.Name.Value, sent.Type, DnsTypes.ClassIn)], records, sent.Upstream);

    public static QueryDecision.Forward Forward(DnsPolicy policy, string name, ushort type = DnsTypes.A) =>
        (QueryDecision.Forward)QueryDecider.Decide(policy, 0, [new DnsQuestion(name, type, DnsTypes.ClassIn)]);

    public static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static IEnumerable<string> Addresses(UpstreamAnswer answer, ImmutableArray<int> keep) =>
        keep.Select(i => answer.Answers[i]).Where(r => r.Address is not null).Select(r => r.Address!.ToString());
}
