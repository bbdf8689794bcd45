using System.Diagnostics;
using WhaleWall.Firewall.Check;
using Xunit;

namespace WhaleWall.Tests.Check;

public class UnifiedDiffTests
{
    private static string Lines(int from, int to) => string.Concat(Enumerable.Range(from, to - from + 1).Select(i => $"l{i}\n"));

    [Fact]
    public void Equal_texts_have_no_diff() => Assert.Equal("", UnifiedDiff.Render("a\nb\n", "a\nb\n", "a", "b"));

    [Fact]
    public void A_change_shows_three_lines_of_context_each_side()
    {
        var old = Lines(1, 10);
        var now = old.Replace("l5\n", "l5 changed\n");
        Assert.Equal("""
            --- a/compose.yml
            +++ b/compose.yml
            @@ -2,7 +2,7 @@
             l2
             l3
             l4
            -l5
            +l5 changed
             l6
             l7
             l8

            """, UnifiedDiff.Render(old, now, "a/compose.yml", "b/compose.yml"));
    }

    [Fact]
    public void Insertions_near_each_other_share_a_hunk_and_far_ones_do_not()
    {
        var old = Lines(1, 30);
        var near = old.Replace("l5\n", "l5\nnew a\n").Replace("l10\n", "l10\nnew b\n");
        var diff = UnifiedDiff.Render(old, near, "a", "b");
        Assert.Single(diff.Split('\n'), l => l.StartsWith("@@"));
        Assert.Contains("@@ -3,11 +3,13 @@\n", diff);

        var far = old.Replace("l2\n", "l2\nnew a\n").Replace("l25\n", "l25\nnew b\n");
        var two = UnifiedDiff.Render(old, far, "a", "b");
        Assert.Equal(["@@ -1,5 +1,6 @@", "@@ -23,6 +24,7 @@"], two.Split('\n').Where(l => l.StartsWith("@@")));
    }

    [Fact]
    public void Appending_to_an_empty_file_and_a_missing_final_newline_are_spelled_as_gnu_diff_does()
    {
        Assert.Equal("--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n", UnifiedDiff.Render("", "x\ny\n", "a", "b"));
        Assert.Equal("--- a\n+++ b\n@@ -1,2 +1,3 @@\n a\n-b\n\\ No newline at end of file\n+b\n+c\n\\ No newline at end of file\n",
            UnifiedDiff.Render("a\nb", "a\nb\nc", "a", "b"));
    }

    [Fact]
    public void Matches_gnu_diff_on_an_edit_of_a_compose_file()
    {
        var old = "services:\n  web:\n    image: x\n    labels:\n      a: b\n  db:\n    image: y\n";
        var now = ComposeLabels.Set(old, "web", [new("whalewall.enabled", "true"), new("a", "c")]).Text!;
        var dir = Directory.CreateTempSubdirectory("ww-diff-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "old"), old);
            File.WriteAllText(Path.Combine(dir.FullName, "new"), now);
            var psi = new ProcessStartInfo("diff") { RedirectStandardOutput = true, WorkingDirectory = dir.FullName };
            foreach (var a in new[] { "-u", "--label", "a/c.yml", "--label", "b/c.yml", "old", "new" }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var gnu = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.Equal(gnu, UnifiedDiff.Render(old, now, "a/c.yml", "b/c.yml"));
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void Two_unrelated_huge_texts_fall_back_to_one_replaced_block_in_bounded_time()
    {
        var old = string.Concat(Enumerable.Range(0, 50_000).Select(i => $"a{i}\n"));
        var now = string.Concat(Enumerable.Range(0, 50_000).Select(i => $"b{i}\n"));
        var sw = Stopwatch.StartNew();
        var diff = UnifiedDiff.Render(old, now, "a", "b");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.StartsWith("--- a\n+++ b\n@@ -1,50000 +1,50000 @@\n-a0\n", diff);
    }
}
