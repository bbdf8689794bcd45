using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Nft;

/// <summary>Chain names and ct marks come from label content, so they must not let one label
/// forge another's: r_ names are 128 bits of SHA-256, q_ names and marks spell their queues.</summary>
public class RuleChainTests
{
    [Fact]
    public void Rule_chain_names_are_128_bits_of_sha256_and_stable()
    {
        // pinned: a chain in the kernel keeps its name across restarts and versions
        var chain = RuleChain.ForRule("web ", null, "audit", null);
        Assert.Equal("r_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("4:web ;-;5:audit;-;"u8))[..32], chain.Name);
        Assert.Matches("^r_[0-9a-f]{32}$", chain.Name);
        Assert.Equal(chain, RuleChain.ForRule("web ", null, "audit", null));
    }

    [Theory]
    [InlineData("a|", null, "b", null, "a", null, "|b", null)] // the old '|'-joined text made these alike
    [InlineData("1", null, null, null, null, 1u, null, null)]
    [InlineData(null, null, "x", null, "x", null, null, null)]
    [InlineData(null, null, null, (ushort)5, null, 5u, null, null)]
    public void Different_contents_never_share_a_name(string? p1, uint? m1, string? j1, ushort? q1, string? p2, uint? m2, string? j2, ushort? q2) =>
        Assert.NotEqual(RuleChain.ForRule(p1, m1, j1, q1).Name, RuleChain.ForRule(p2, m2, j2, q2).Name);

    [Fact]
    public void Est_queue_chains_and_marks_spell_their_queues()
    {
        var chain = RuleChain.ForEstablished(7, 32767);
        Assert.Equal("q_7_32767", chain.Name);
        Assert.Equal(0x80000000u | (7u << 15) | 32767u, RuleChain.MarkOf(chain));
    }

    [Fact]
    public void Every_queue_pair_has_its_own_mark()
    {
        // injective by construction; checked on every pair sharing a queue with another, and the extremes
        var marks = new HashSet<uint>();
        for (var a = 0; a <= PolicySize.MaxEstQueue; a += 97)
        for (var b = 0; b <= PolicySize.MaxEstQueue; b += 89)
            Assert.True(marks.Add(RuleChain.MarkOf(RuleChain.ForEstablished((ushort)a, (ushort)b))));
        Assert.True(marks.Add(RuleChain.MarkOf(RuleChain.ForEstablished(32767, 32767))));
        Assert.All(marks, m => Assert.True(m >= 0x80000000u));
    }

    [Fact]
    public void A_mark_for_queues_past_15_bits_is_refused() =>
        Assert.Throws<ArgumentException>(() => RuleChain.MarkOf(RuleChain.ForEstablished(32768, 1)));
}
