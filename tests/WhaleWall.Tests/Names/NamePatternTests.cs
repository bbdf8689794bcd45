using WhaleWall.Firewall.Names;
using Xunit;

namespace WhaleWall.Tests.Names;

/// <summary>Tables of names that must and must not match, in the style of Cilium's
/// matchpattern tests (pattern, accept, reject).</summary>
public class NamePatternTests
{
    public static TheoryData<string, string[], string[]> Cases => new()
    {
        {
            "example.com",
            ["example.com", "EXAMPLE.com", "example.com.", "Example.Com."],
            ["a.example.com", "badexample.com", "example.com.evil", "example.co", "xample.com", "example.comm"]
        },
        {
            "*.example.com",
            ["a.example.com", "A.EXAMPLE.COM", "a.example.com.", "x-y.example.com", "_svc.example.com", "123.example.com"],
            ["example.com", "a.b.example.com", "badexample.com", "a.badexample.com", "example.com.evil",
             "a.example.com.evil", "aexample.com", "a.example.comm", "a.xexample.com"]
        },
        {
            "*.*.example.com",
            ["a.b.example.com", "_foobar._tcp.example.com"],
            ["a.example.com", "example.com", "a.b.c.example.com", "a.b.badexample.com", "a.b.example.com.evil"]
        },
        {
            "**.example.com",
            ["a.example.com", "a.b.example.com", "a.b.c.d.e.example.com", "A.B.Example.COM."],
            ["example.com", "badexample.com", "a.badexample.com", "example.com.evil", "a.example.com.evil", "a.b.example.co"]
        },
        {
            // the issue's own end-to-end names
            "*.svc.example.test",
            ["a.svc.example.test"],
            ["a.b.svc.example.test", "svc.example.test", "evilsvc.example.test", "a.evilsvc.example.test"]
        },
        {
            "**.svc.example.test",
            ["a.svc.example.test", "a.b.svc.example.test"],
            ["svc.example.test", "evilsvc.example.test", "a.evilsvc.example.test"]
        },
        {
            // IDNA: the U-label and the A-label are one name, whatever their case
            "bücher.example",
            ["bücher.example", "BÜCHER.example", "xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE."],
            ["bucher.example", "a.bücher.example"]
        },
        {
            "*.xn--bcher-kva.example",
            ["a.bücher.example", "a.xn--bcher-kva.example"],
            ["bücher.example", "a.b.bücher.example"]
        },
        {
            "*.com",
            ["example.com"],
            ["a.example.com", "com", "example.org"]
        },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pattern_matches_exactly_its_names(string patternText, string[] accept, string[] reject)
    {
        var pattern = NamePattern.Parse(patternText);
        var matcher = new NameMatcher([pattern]);
        foreach (var name in accept)
        {
            var parsed = DnsName.Parse(name);
            Assert.True(pattern.Matches(parsed), $"{patternText} must match {name}");
            Assert.True(matcher.Matches(parsed), $"matcher {patternText} must match {name}");
        }
        foreach (var name in reject)
        {
            if (!DnsName.TryParse(name, out var parsed, out _)) continue; // not even a name: cannot match
            Assert.False(pattern.Matches(parsed), $"{patternText} must not match {name}");
            Assert.False(matcher.Matches(parsed), $"matcher {patternText} must not match {name}");
        }
    }

    [Theory]
    [InlineData("a*.example.com", "whole first label")]
    [InlineData("*a.example.com", "whole first label")]
    [InlineData("a.*.example.com", "whole first label")]
    [InlineData("example.*", "whole first label")]
    [InlineData("*.**.example.com", "not a mix")]
    [InlineData("**.*.example.com", "not a mix")]
    [InlineData("**.**.example.com", "not a mix")]
    [InlineData("*", "at least one fixed label")]
    [InlineData("**", "at least one fixed label")]
    [InlineData("*.", "at least one fixed label")]
    [InlineData("**.", "at least one fixed label")]
    [InlineData("*.*", "at least one fixed label")]
    [InlineData("", "empty")]
    [InlineData(".", "at least one fixed label")]
    [InlineData("a..example.com", "empty")]
    [InlineData(".example.com", "empty")]
    [InlineData("example.com..", "empty")]
    [InlineData("-a.example.com", "hyphen")]
    [InlineData("a-.example.com", "hyphen")]
    [InlineData("a b.example.com", "holds ' '")]
    [InlineData("a/b.example.com", "holds '/'")]
    [InlineData("xn--zz.example.com", "IDNA")]        // not valid punycode
    [InlineData("xn--Bcher-kva.example.com", "")]     // valid once lower-cased: accepted (see next test)
    [InlineData("ａｂｃ.example.com", "not allowed in an internationalised label")] // fullwidth: ICU would map it, invariant mode would not
    [InlineData("a\u200bb.example.com", "not allowed in an internationalised label")] // zero-width space
    [InlineData("a\u00a0b.example.com", "not allowed in an internationalised label")] // no-break space
    [InlineData("bu\u0308cher.example.com", "IDNA-mapped form")]    // decomposed ü (ICU composes it); see DnsName
    public void Malformed_patterns_are_refused_with_a_reason(string text, string reason)
    {
        if (reason.Length == 0) { Assert.True(NamePattern.TryParse(text, out _, out _)); return; }
        Assert.False(NamePattern.TryParse(text, out _, out var error), $"{text} must be refused");
        Assert.Contains(reason, error);
    }

    [Fact]
    public void Names_over_253_bytes_or_labels_over_63_are_refused()
    {
        var label63 = new string('a', 63);
        var name253 = string.Join('.', label63, label63, label63, new string('b', 61)); // 63*3 + 61 + 3 dots = 253
        Assert.Equal(253, name253.Length);
        Assert.True(DnsName.TryParse(name253, out _, out _));
        Assert.True(DnsName.TryParse(name253 + ".", out _, out _)); // the trailing dot is not counted
        Assert.False(DnsName.TryParse("c." + name253, out _, out var tooLong));
        Assert.Contains("253", tooLong);
        Assert.False(DnsName.TryParse(new string('a', 64) + ".example.com", out _, out var labelTooLong));
        Assert.Contains("63", labelTooLong);
        Assert.True(DnsName.TryParse(label63 + ".example.com", out _, out _));
        // an IDNA label whose A-label is over 63 bytes
        // (60 letters and one ü: 61 characters, but "xn--" + 60 + "-" + the delta: over 63)
        Assert.False(DnsName.TryParse(new string('a', 60) + "ü.example", out _, out _));
        Assert.True(DnsName.TryParse(new string('a', 50) + "ü.example", out _, out _));
        // a wildcard pattern whose shortest match is already too long
        Assert.False(NamePattern.TryParse("*." + name253, out _, out _));
        Assert.True(NamePattern.TryParse("*." + string.Join('.', label63, label63, label63, new string('b', 59)), out _, out _));
    }

    [Fact]
    public void A_huge_name_is_refused_without_being_split()
    {
        var huge = string.Join('.', Enumerable.Repeat("a", 500_000));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(DnsName.TryParse(huge, out _, out _));
        Assert.False(NamePattern.TryParse("*." + huge, out _, out _));
        Assert.True(watch.ElapsedMilliseconds < 50, $"took {watch.ElapsedMilliseconds} ms");
    }

    [Theory]
    [InlineData("Example.COM.", "example.com")]
    [InlineData("BÜCHER.example", "xn--bcher-kva.example")]
    [InlineData("xn--BCHER-KVA.example", "xn--bcher-kva.example")]
    [InlineData("_acme-challenge.Example.com", "_acme-challenge.example.com")]
    [InlineData("db", "db")]
    public void Names_are_normalised_to_lower_case_ascii_without_the_trailing_dot(string text, string expected) =>
        Assert.Equal(expected, DnsName.Parse(text).Value);

    [Fact]
    public void Patterns_print_as_written_after_normalisation()
    {
        Assert.Equal("*.example.com", NamePattern.Parse("*.Example.COM.").ToString());
        Assert.Equal("*.*.example.com", NamePattern.Parse("*.*.example.com").ToString());
        Assert.Equal("**.xn--bcher-kva.example", NamePattern.Parse("**.bücher.example").ToString());
    }

    [Fact]
    public void Matcher_over_many_patterns_answers_each_like_the_patterns_one_by_one()
    {
        var patterns = new[]
        {
            "api.example.com", "*.svc.example.test", "**.cdn.example.net", "*.*.cluster.local",
            "*.cluster.local", "exact.cluster.local",
        }.Select(NamePattern.Parse).ToArray();
        var matcher = new NameMatcher(patterns);
        var names = new[]
        {
            "api.example.com", "x.api.example.com", "a.svc.example.test", "a.b.svc.example.test",
            "cdn.example.net", "a.cdn.example.net", "a.b.c.cdn.example.net", "a.cluster.local",
            "a.b.cluster.local", "a.b.c.cluster.local", "exact.cluster.local", "cluster.local", "local",
        };
        foreach (var text in names)
        {
            var name = DnsName.Parse(text);
            Assert.Equal(patterns.Any(p => p.Matches(name)), matcher.Matches(name));
        }
        Assert.False(NameMatcher.Empty.Matches(DnsName.Parse("example.com")));
    }
}
