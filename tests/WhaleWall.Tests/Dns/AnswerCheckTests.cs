using System.Diagnostics;
using System.Net;
using WhaleWall.Firewall.Dns;
using Xunit;
using static WhaleWall.Tests.Dns.DnsTestData;

namespace WhaleWall.Tests.Dns;

public class AnswerCheckTests
{
    private static readonly SentQuery Q = Sent("api.example.com");

    public static TheoryData<string, UpstreamAnswer> Spoofed
    {
        get
        {
            var good = Answer(Q, A("api.example.com", "198.19.0.10"));
            return new TheoryData<string, UpstreamAnswer>
            {
                { "another address", good with { From = new IPEndPoint(IPAddress.Parse("198.18.20.3"), 53) } },
                { "another port", good with { From = new IPEndPoint(Upstream.Address, 5353) } },
                { "another id", good with { Id = 4243 } },
                { "a query, not a response", good with { IsResponse = false } },
                { "another name", good with { Questions = [new DnsQuestion("api.example.co", DnsTypes.A, DnsTypes.ClassIn)] } },
                { "a longer name", good with { Questions = [new DnsQuestion("api.example.com.evil", DnsTypes.A, DnsTypes.ClassIn)] } },
                { "another type", good with { Questions = [new DnsQuestion("api.example.com", DnsTypes.AAAA, DnsTypes.ClassIn)] } },
                { "another class", good with { Questions = [new DnsQuestion("api.example.com", DnsTypes.A, 3)] } },
                { "no question", good with { Questions = [] } },
                { "two questions", good with { Questions = [good.Questions[0], good.Questions[0]] } },
            };
        }
    }

    [Theory]
    [MemberData(nameof(Spoofed))]
    public void Answers_that_do_not_match_the_query_are_ignored(string what, UpstreamAnswer answer) =>
        Assert.True(AnswerCheck.Mismatch(Q, answer) is not null, what);

    [Fact]
    public void The_real_answer_matches_whatever_the_case_of_its_question()
    {
        Assert.Null(AnswerCheck.Mismatch(Q, Answer(Q, A("api.example.com", "198.19.0.10"))));
        var upper = Answer(Q) with { Questions = [new DnsQuestion("API.EXAMPLE.COM.", DnsTypes.A, DnsTypes.ClassIn)] };
        Assert.Null(AnswerCheck.Mismatch(Q, upper));
        var mapped = Answer(Q) with { From = new IPEndPoint(Upstream.Address.MapToIPv6(), 53) };
        Assert.Null(AnswerCheck.Mismatch(Q, mapped));
    }

    [Fact]
    public void Cname_chains_are_followed_step_by_step_and_records_off_the_chain_ignored()
    {
        var answer = Answer(Q,
            A("api.example.com", "198.19.0.66"),          // the question name has a CNAME: an A beside it is off the chain
            Cname("api.example.com", "edge.CDN.example.net", 300),
            Cname("edge.cdn.example.net", "e1.cdn.example.net", 20),
            A("e1.cdn.example.net", "198.19.0.10", 60),
            A("E1.CDN.EXAMPLE.NET.", "198.19.0.11", 10),   // another case, same name
            A("other.example.net", "198.19.0.99"),         // poisoning attempt: not on the chain
            Cname("unrelated.example.com", "e1.cdn.example.net"),
            A("e1.cdn.example.net", "2001:db8::1"));       // AAAA data in an A answer: ignored
        var (chain, error) = AnswerCheck.Follow(Q, answer);
        Assert.Null(error);
        Assert.Equal(["api.example.com", "edge.cdn.example.net", "e1.cdn.example.net"], chain!.Names.Select(n => n.Value));
        Assert.Equal([1, 2], chain.Cnames.ToArray());
        Assert.Equal([("198.19.0.10", 20u), ("198.19.0.11", 10u)], chain.Addresses.Select(a => (a.Address.ToString(), a.Ttl)));
    }

    [Fact]
    public void Loops_long_chains_and_forks_are_refused()
    {
        var loop = Answer(Q, Cname("api.example.com", "b.example.com"), Cname("b.example.com", "API.example.com"), A("b.example.com", "198.19.0.10"));
        Assert.Contains("loop", AnswerCheck.Follow(Q, loop).Error);
        var self = Answer(Q, Cname("api.example.com", "api.example.com"));
        Assert.Contains("loop", AnswerCheck.Follow(Q, self).Error);

        DnsRecord[] Chain(int steps) =>
            Enumerable.Range(0, steps).Select(i => Cname(i == 0 ? "api.example.com" : $"c{i}.example.com", $"c{i + 1}.example.com"))
                .Append(A($"c{steps}.example.com", "198.19.0.10")).ToArray();
        Assert.Null(AnswerCheck.Follow(Q, Answer(Q, Chain(AnswerCheck.MaxChain))).Error);
        Assert.Contains("longer than", AnswerCheck.Follow(Q, Answer(Q, Chain(AnswerCheck.MaxChain + 1))).Error);

        var fork = Answer(Q, Cname("api.example.com", "a.example.net"), Cname("api.example.com", "b.example.net"));
        Assert.Contains("two CNAMEs", AnswerCheck.Follow(Q, fork).Error);
    }

    [Fact]
    public void Huge_answers_are_bounded()
    {
        var watch = Stopwatch.StartNew();
        var many = Answer(Q, Enumerable.Range(0, AnswerCheck.MaxRecords)
            .Select(i => A("api.example.com", $"198.19.{i / 250}.{i % 250 + 1}")).ToArray());
        var (chain, _) = AnswerCheck.Follow(Q, many);
        Assert.Equal(AnswerCheck.MaxRecords, chain!.Addresses.Length); // bounded here, capped later by the learning limits
        var tooMany = Answer(Q, Enumerable.Range(0, AnswerCheck.MaxRecords + 1).Select(_ => A("api.example.com", "198.19.0.10")).ToArray());
        Assert.Contains("answer records", AnswerCheck.Follow(Q, tooMany).Error);
        // a long chain of CNAMEs with names at the length limit, most of them decoys
        var label = new string('x', 63);
        var decoys = Enumerable.Range(0, AnswerCheck.MaxRecords - 1).Select(i => Cname($"{label}.{label}.{label}.d{i}", "api.example.com")).ToArray();
        Assert.Null(AnswerCheck.Follow(Q, Answer(Q, [.. decoys, A("api.example.com", "198.19.0.10")])).Error);
        Assert.True(watch.ElapsedMilliseconds < 500, $"took {watch.ElapsedMilliseconds} ms");
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("127.0.0.1")]
    [InlineData("255.255.255.255")]
    [InlineData("224.0.0.1")]
    [InlineData("0.1.2.3")]
    public void Unspecified_loopback_and_multicast_addresses_are_never_learned(string address)
    {
        var (chain, _) = AnswerCheck.Follow(Q, Answer(Q, A("api.example.com", address), A("api.example.com", "198.19.0.10")));
        Assert.Equal(["198.19.0.10"], chain!.Addresses.Select(a => a.Address.ToString()));
        var q6 = Sent("api.example.com", DnsTypes.AAAA);
        var (chain6, _) = AnswerCheck.Follow(q6, Answer(q6, A("api.example.com", "::"), A("api.example.com", "::1"), A("api.example.com", "ff02::1"), A("api.example.com", "2001:db8::10")));
        Assert.Equal(["2001:db8::10"], chain6!.Addresses.Select(a => a.Address.ToString()));
    }
}
