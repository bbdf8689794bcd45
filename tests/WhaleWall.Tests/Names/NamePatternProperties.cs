using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Names;
using Xunit;

namespace WhaleWall.Tests.Names;

/// <summary>Generated names and patterns over a small alphabet of labels chosen to collide
/// (<c>example</c>, <c>badexample</c>, <c>com</c>, <c>evil</c>, ...), checked against an
/// oracle that compares label lists.</summary>
public class NamePatternProperties
{
    private static readonly string[] Alphabet = ["a", "b", "example", "badexample", "com", "evil", "Example", "x-y", "_t", "ab"];

    private static readonly Gen<string[]> Labels =
        Gen.Choose(1, 5).SelectMany(n => Gen.ArrayOf(Gen.Elements(Alphabet), n));

    private static readonly Gen<(string Pattern, string Name)> Pairs =
        from suffix in Labels
        from kind in Gen.Choose(0, 3)
        from nameLabels in Labels
        from dot in Gen.Elements("", ".")
        let prefix = kind switch { 0 => "", 1 => "*.", 2 => "*.*.", _ => "**." }
        select (prefix + string.Join('.', suffix), string.Join('.', nameLabels) + dot);

    [Fact]
    public void Wildcards_match_on_label_boundaries_only()
    {
        Prop.ForAll(Pairs.ToArbitrary(), pair =>
        {
            var pattern = NamePattern.Parse(pair.Pattern);
            var name = DnsName.Parse(pair.Name);
            var matched = pattern.Matches(name);
            if (matched != Oracle(pattern, name)) return false;
            if (new NameMatcher([pattern]).Matches(name) != matched) return false;
            if (!matched || pattern.IsExact) return true;
            // label-boundary safety as a string fact: the fixed part follows a dot, and the
            // name has exactly as many extra labels as the wildcards say
            var extra = name.Labels.Count - pattern.Suffix.Labels.Count;
            return name.Value.EndsWith("." + pattern.Suffix.Value, StringComparison.Ordinal)
                   && (pattern.AnyDepth ? extra >= 1 : extra == pattern.SingleLabels);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(20_000).WithQuietOnSuccess(true));
    }

    [Fact]
    public void A_matcher_over_many_patterns_equals_any_of_its_patterns()
    {
        var gen =
            from patterns in Gen.Choose(1, 8).SelectMany(n => Gen.ArrayOf(Pairs.Select(p => p.Pattern), n))
            from names in Gen.ArrayOf(Pairs.Select(p => p.Name), 10)
            select (patterns, names);
        Prop.ForAll(gen.ToArbitrary(), input =>
        {
            var patterns = input.patterns.Select(NamePattern.Parse).ToArray();
            var matcher = new NameMatcher(patterns);
            return input.names.Select(DnsName.Parse).All(n => matcher.Matches(n) == patterns.Any(p => p.Matches(n)));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(5_000).WithQuietOnSuccess(true));
    }

    private static bool Oracle(NamePattern pattern, DnsName name)
    {
        var fixedLabels = pattern.Suffix.Labels;
        var extra = name.Labels.Count - fixedLabels.Count;
        if (extra < 0) return false;
        if (!name.Labels.Skip(extra).SequenceEqual(fixedLabels)) return false;
        return pattern.IsExact ? extra == 0 : pattern.AnyDepth ? extra >= 1 : extra == pattern.SingleLabels;
    }
}
