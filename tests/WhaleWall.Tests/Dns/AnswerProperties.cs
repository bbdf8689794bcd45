using System.Net;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using Xunit;
using static WhaleWall.Tests.Dns.DnsTestData;

namespace WhaleWall.Tests.Dns;

/// <summary>Generated hostile answers (random CNAME graphs with loops and forks, address records
/// scattered over names, mixed case, other classes and families): the decider never throws, and
/// whatever it commits is an address record of the chain's last name, reached from the question
/// name by linked CNAMEs, allowed by a name on that chain.</summary>
public class AnswerProperties
{
    private static readonly string[] Names = ["q.example.test", "Q.EXAMPLE.TEST", "a.example.test", "b.example.test", "c.cdn.test", "d.cdn.test", "evil.test"];

    private static readonly Gen<DnsRecord> Records =
        from kind in Gen.Choose(0, 9)
        from owner in Gen.Elements(Names)
        from target in Gen.Elements(Names)
        from last in Gen.Choose(1, 20)
        from ttl in Gen.Choose(0, 100_000)
        from cls in Gen.Elements<ushort>(1, 1, 1, 3)
        select kind switch
        {
            < 4 => Cname(owner, target, (uint)ttl) with { Class = cls },
            < 9 => A(owner, $"198.19.0.{last}", (uint)ttl) with { Class = cls },
            _ => A(owner, $"2001:db8::{last}", (uint)ttl) with { Class = cls },
        };

    [Fact]
    public void Only_addresses_on_the_linked_chain_and_allowed_by_it_are_committed()
    {
        var policy = ResolveAny("*.cdn.test", "a.example.test");
        var gen = Gen.Choose(0, 30).SelectMany(n => Gen.ArrayOf(Records, n));
        Prop.ForAll(gen.ToArbitrary(), records =>
        {
            var sent = Sent("q.example.test");
            var answer = Answer(sent, records);
            var (decision, _) = AnswerDecider.Decide(policy, Forward(policy, "q.example.test"), sent, answer,
                LearnedAddresses.Empty, LearningLimits.Default, T0);
            if (decision is not AnswerDecision.Release { Commit: { } batch } release) return true;
            // rebuild the chain by hand from the released records
            var kept = release.Keep.Select(i => answer.Answers[i]).ToList();
            var current = DnsName.Parse("q.example.test");
            var chainNames = new List<DnsName> { current };
            foreach (var cname in kept.Where(r => r.Type == DnsTypes.CNAME))
            {
                if (DnsName.Parse(cname.Name) != current || cname.Class != DnsTypes.ClassIn) return false; // not linked
                current = DnsName.Parse(cname.Target!);
                chainNames.Add(current);
            }
            var addressRecords = kept.Where(r => r.Type != DnsTypes.CNAME).ToList();
            return addressRecords.All(r => DnsName.Parse(r.Name) == current && r.Type == DnsTypes.A && r.Class == DnsTypes.ClassIn)
                   && batch.Addresses.All(a => addressRecords.Any(r => r.Address!.Equals(a.Address)))
                   && batch.AllowedNames.All(n => chainNames.Contains(n) && policy.Names.Matches(n))
                   && !batch.AllowedNames.IsEmpty
                   && chainNames.Count == chainNames.Distinct().Count();
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(20_000).WithQuietOnSuccess(true));
    }
}
