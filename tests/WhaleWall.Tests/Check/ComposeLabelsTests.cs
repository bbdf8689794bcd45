using System.Diagnostics;
using System.Text;
using WhaleWall.Firewall.Check;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Tests.Check;

/// <summary><see cref="ComposeLabels.Set"/>: the labels `whalewall suggest --compose` writes,
/// as a text edit that leaves every byte outside the service's labels alone.</summary>
public class ComposeLabelsTests(ITestOutputHelper output)
{
    private const string Rules = """
        output:
          - container: db
            proto: tcp
            dst_ports: [5432]
          - hosts: ["api.example.com"]
            proto: tcp
            dst_ports: [443, 8000-8002]

        """;

    private static readonly KeyValuePair<string, string>[] Suggested =
    [
        new("whalewall.enabled", "true"),
        new("whalewall.rules", Rules),
    ];

    private static string Set(string yaml, string service, params KeyValuePair<string, string>[] labels)
    {
        var result = ComposeLabels.Set(yaml, service, labels);
        Assert.True(result.Error is null, result.Error);
        return result.Text!;
    }

    private static string Error(string yaml, string service, params KeyValuePair<string, string>[] labels)
    {
        var result = ComposeLabels.Set(yaml, service, labels);
        Assert.True(result.Text is null, "expected an error, got:\n" + result.Text);
        return result.Error!;
    }

    /// <summary>The service's labels as docker compose reads them (YamlDotNet, merge keys applied).</summary>
    private static IReadOnlyDictionary<string, string> LabelsOf(string yaml, string service)
    {
        var parsed = ComposeFile.Parse(yaml, "p");
        Assert.Null(parsed.Error);
        return parsed.Services.Single(s => s.Name == service).Labels
            .Where(l => !l.Key.StartsWith("com.docker.compose.", StringComparison.Ordinal))
            .ToDictionary(l => l.Key, l => l.Value);
    }

    private const string MapForm = """
        # shop, production
        name: shop
        services:
          web:
            image: nginx   # pinned below
            labels:
              traefik.enable: "true"
              whalewall.enabled: "false"  # off for now
            ports: ["8080:80"]
          db:
            image: postgres
            labels:
              keep: me
        """;

    [Fact]
    public void Map_form_replaces_a_key_in_place_and_appends_new_keys_after_the_last()
    {
        var text = Set(MapForm, "web", Suggested);
        output.WriteLine(text);
        var expected = """
            # shop, production
            name: shop
            services:
              web:
                image: nginx   # pinned below
                labels:
                  traefik.enable: "true"
                  whalewall.enabled: "true"  # off for now
                  whalewall.rules: |
                    output:
                      - container: db
                        proto: tcp
                        dst_ports: [5432]
                      - hosts: ["api.example.com"]
                        proto: tcp
                        dst_ports: [443, 8000-8002]
                ports: ["8080:80"]
              db:
                image: postgres
                labels:
                  keep: me
            """;
        Assert.Equal(expected, text);
        Assert.Equal(new Dictionary<string, string> { ["traefik.enable"] = "true", ["whalewall.enabled"] = "true", ["whalewall.rules"] = Rules },
            LabelsOf(text, "web"));
    }

    [Fact]
    public void List_form_stays_a_list_with_the_rules_as_one_block_item()
    {
        const string yaml = """
            services:
              web:
                labels:
                  - traefik.enable=true
                  - whalewall.enabled=false
                image: nginx
              db:
                image: postgres
            """;
        var text = Set(yaml, "web", Suggested);
        output.WriteLine(text);
        var expected = """
            services:
              web:
                labels:
                  - traefik.enable=true
                  - whalewall.enabled=true
                  - |
                    whalewall.rules=output:
                      - container: db
                        proto: tcp
                        dst_ports: [5432]
                      - hosts: ["api.example.com"]
                        proto: tcp
                        dst_ports: [443, 8000-8002]
                image: nginx
              db:
                image: postgres
            """;
        Assert.Equal(expected, text);
        Assert.Equal(Rules, LabelsOf(text, "web")["whalewall.rules"]);
    }

    [Fact]
    public void Absent_labels_become_a_map_after_the_services_last_entry_in_the_files_indentation()
    {
        const string yaml = """
            services:
                web:
                    image: nginx
                    environment:
                        - A=1
                    # the database
                db:
                    image: postgres
            """;
        var text = Set(yaml, "web", Suggested);
        output.WriteLine(text);
        var expected = """
            services:
                web:
                    image: nginx
                    environment:
                        - A=1
                    labels:
                        whalewall.enabled: "true"
                        whalewall.rules: |
                          output:
                            - container: db
                              proto: tcp
                              dst_ports: [5432]
                            - hosts: ["api.example.com"]
                              proto: tcp
                              dst_ports: [443, 8000-8002]
                    # the database
                db:
                    image: postgres
            """;
        Assert.Equal(expected, text);
        Assert.Equal(Rules, LabelsOf(text, "web")["whalewall.rules"]);
    }

    [Fact]
    public void A_multi_line_rules_block_is_replaced_whole_and_reads_back_exactly()
    {
        const string yaml = """
            services:
              web:
                labels:
                  whalewall.rules: |  # old rules
                    output:
                      - ips: [10.0.0.1]

                      - ips: [10.0.0.2]
                  after: x
            """;
        var text = Set(yaml, "web", new KeyValuePair<string, string>("whalewall.rules", Rules));
        output.WriteLine(text);
        Assert.Contains("whalewall.rules: |  # old rules\n", text);
        Assert.Equal(Rules, LabelsOf(text, "web")["whalewall.rules"]);
        Assert.Equal("x", LabelsOf(text, "web")["after"]);
        Assert.DoesNotContain("10.0.0.2", text);
        // straight through YamlDotNet too, not only through ComposeFile
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        var labels = (YamlMappingNode)((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)stream.Documents[0].RootNode)["services"])["web"])["labels"];
        Assert.Equal(Rules, ((YamlScalarNode)labels["whalewall.rules"]).Value);
    }

    [Theory]
    [InlineData("no trailing newline\n  indented")]
    [InlineData("a\n\n\nb\n")]
    [InlineData("two trailing\n\n")]
    [InlineData("  leading space\nx")]
    [InlineData("tab\there\n# not a comment\n---\n...\n")]
    [InlineData("quote \" and backslash \\ and: colon #hash\n")]
    [InlineData("carriage\r\nreturn")]
    [InlineData("ws-only line\n   \nend")]
    [InlineData("unicode ü € 😀\nzero\u0001control")]
    [InlineData("true")]
    [InlineData("123")]
    [InlineData("")]
    [InlineData("a: b")]
    [InlineData("line\u2028separator\u2029and\u0085next line\n")]
    public void Any_value_reads_back_as_the_exact_string_in_every_form(string value)
    {
        foreach (var yaml in new[]
                 {
                     "services:\n  web:\n    labels:\n      k: old\n",
                     "services:\n  web:\n    labels:\n      - k=old\n",
                     "services:\n  web:\n    labels: {k: old}\n",
                     "services:\n  web:\n    labels: [k=old]\n",
                     "services:\n  web:\n    image: x\n",
                 })
        {
            var text = Set(yaml, "web", new("k", value), new("new.key", value));
            Assert.Equal(value, LabelsOf(text, "web")["k"]);
            Assert.Equal(value, LabelsOf(text, "web")["new.key"]);
        }
    }

    [Theory]
    [InlineData("a\n\n\nb\n", "|\n        a\n\n\n        b\n")]
    [InlineData("x\n  y", "|-\n        x\n          y\n")]
    [InlineData("  leading\nspace\n", "\"  leading\\nspace\\n\"\n")]
    [InlineData("x\n\n", "\"x\\n\\n\"\n")]
    public void Multi_line_values_are_literal_blocks_where_a_block_reads_back_exactly_else_double_quoted(string value, string written)
    {
        var text = Set("services:\n  web:\n    labels:\n      k: old\n", "web", new KeyValuePair<string, string>("k", value));
        Assert.Equal("services:\n  web:\n    labels:\n      k: " + written, text);
    }

    [Fact]
    public void Flow_forms_stay_flow()
    {
        var map = Set("services:\n  web:\n    labels: {a: b, whalewall.enabled: \"false\"}  # c\n", "web", Suggested);
        output.WriteLine(map);
        Assert.StartsWith("services:\n  web:\n    labels: {a: b, whalewall.enabled: \"true\", whalewall.rules: \"output:\\n", map);
        Assert.EndsWith("}  # c\n", map);
        var list = Set("services:\n  web:\n    labels: []\n", "web", new KeyValuePair<string, string>("whalewall.enabled", "true"));
        Assert.Equal("services:\n  web:\n    labels: [\"whalewall.enabled=true\"]\n", list);
    }

    [Fact]
    public void Empty_labels_key_is_filled_in_map_form()
    {
        var text = Set("services:\n  web:\n    labels:   # to do\n    image: x\n", "web", new KeyValuePair<string, string>("whalewall.enabled", "true"));
        Assert.Equal("services:\n  web:\n    labels:   # to do\n      whalewall.enabled: \"true\"\n    image: x\n", text);
    }

    [Fact]
    public void Comments_crlf_and_every_other_byte_are_kept()
    {
        var yaml = MapForm.Replace("\n", "\r\n") + "\r\n# trailing comment\r\nx-ext: &defaults\r\n  restart: always\r\n";
        var text = Set(yaml, "db", new KeyValuePair<string, string>("whalewall.enabled", "true"));
        Assert.Equal(yaml.Replace("      keep: me\r\n", "      keep: me\r\n      whalewall.enabled: \"true\"\r\n"), text);
    }

    [Fact]
    public void Other_services_and_a_file_without_final_newline_are_untouched()
    {
        const string yaml = "services:\n  a:\n    image: x\n  b:\n    labels: {k: v}\n  c:\n    image: z";
        var text = Set(yaml, "c", new KeyValuePair<string, string>("k", "v2"));
        Assert.Equal("services:\n  a:\n    image: x\n  b:\n    labels: {k: v}\n  c:\n    image: z\n    labels:\n      k: v2", text);
        Assert.Equal("v", LabelsOf(text, "b")["k"]);
        Assert.Empty(LabelsOf(text, "a"));
    }

    [Fact]
    public void Setting_the_same_value_again_changes_nothing()
    {
        var once = Set(MapForm, "web", Suggested);
        Assert.Equal(once, Set(once, "web", Suggested));
    }

    [Theory]
    [InlineData("services:\n  web:\n    image: x\n", "api", "no service `api`")]
    [InlineData("services:\n  web: nginx\n", "web", "not a mapping")]
    [InlineData("services:\n  web: {image: x}\n", "web", "flow style")]
    [InlineData("x: &d\n  labels: {a: b}\nservices:\n  web:\n    <<: *d\n", "web", "merge key")]
    [InlineData("x: &l {a: b}\nservices:\n  web:\n    labels: *l\n", "web", "alias")]
    [InlineData("services:\n  web:\n    labels: &l {a: b}\n  db:\n    labels: *l\n", "web", "anchor")]
    [InlineData("x: &v old\nservices:\n  web:\n    labels:\n      whalewall.enabled: *v\n", "web", "alias")]
    [InlineData("x: &m {a: b}\nservices:\n  web:\n    labels:\n      <<: *m\n      c: d\n", "web", "merge key")]
    [InlineData("services:\n  web:\n    labels:\n      - whalewall.enabled=a\n      - whalewall.enabled=b\n", "web", "more than once")]
    [InlineData("services:\n  web:\n    labels: [a: b\n", "web", "invalid YAML")]
    [InlineData("services: [web]\n", "web", "`services`")]
    [InlineData("- a\n", "web", "")]
    public void What_cannot_be_edited_safely_is_an_error_not_an_exception(string yaml, string service, string message)
    {
        var error = Error(yaml, service, new KeyValuePair<string, string>("whalewall.enabled", "true"));
        output.WriteLine(error);
        Assert.Contains(message, error);
    }

    [Fact]
    public void Keys_that_list_form_cannot_hold_are_refused()
    {
        Assert.Contains("`=`", Error("services:\n  web:\n    labels:\n      - a=b\n", "web", new KeyValuePair<string, string>("x=y", "1")));
        Assert.Contains("invalid label key", Error("services:\n  web:\n    image: x\n", "web", new KeyValuePair<string, string>("a\nb", "1")));
    }

    [Fact]
    public void A_service_whose_merge_key_brings_no_labels_gets_its_own()
    {
        const string yaml = "x-base: &base\n  restart: always\nservices:\n  web:\n    <<: *base\n    image: x\n";
        var text = Set(yaml, "web", new KeyValuePair<string, string>("whalewall.enabled", "true"));
        Assert.Equal(yaml + "    labels:\n      whalewall.enabled: \"true\"\n", text);
    }

    [Fact]
    public void Docker_compose_accepts_every_form_it_writes()
    {
        var compose = DockerCompose();
        var dir = Directory.CreateTempSubdirectory("ww-compose-labels-");
        try
        {
            var inputs = new[]
            {
                MapForm.Replace("name: shop\n", ""), // docker-compose 1.x knows no `name`
                "services:\n  web:\n    image: x\n    labels:\n      - a=b\n",
                "services:\n  web:\n    image: x\n    labels: {a: b}\n",
                "services:\n  web:\n    image: x\n    labels: [a=b]\n",
                "services:\n  web:\n    image: x\n",
            };
            foreach (var (input, i) in inputs.Select((x, i) => (x, i)))
            {
                var text = Set(input, "web", Suggested);
                var file = Path.Combine(dir.FullName, $"c{i}.yml");
                File.WriteAllText(file, text);
                var (code, stdout, stderr) = Run([.. compose, "-f", file, "config"], dir.FullName);
                Assert.True(code == 0, $"{string.Join(' ', compose)} config refused:\n{text}\n{stderr}");
                // what compose itself makes of the rules label: the same string
                var normalised = new YamlStream();
                normalised.Load(new StringReader(stdout));
                var labels = ((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)normalised.Documents[0].RootNode)["services"])["web"])["labels"]);
                Assert.Equal(Rules, ((YamlScalarNode)labels["whalewall.rules"]).Value);
                Assert.Equal("true", ((YamlScalarNode)labels["whalewall.enabled"]).Value);
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>`docker compose` (v2 plugin) if it works, else `docker-compose` (installed by
    /// scripts/install-deps.sh).</summary>
    private static string[] DockerCompose()
    {
        try
        {
            if (Run(["docker", "compose", "version"], "/").Code == 0) return ["docker", "compose"];
        }
        catch (System.ComponentModel.Win32Exception) { }
        try
        {
            if (Run(["docker-compose", "version"], "/").Code == 0) return ["docker-compose"];
        }
        catch (System.ComponentModel.Win32Exception) { }
        Assert.Fail("neither `docker compose` nor `docker-compose` works: run scripts/install-deps.sh");
        return [];
    }

    private static (int Code, string Out, string Err) Run(string[] argv, string cwd)
    {
        var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        foreach (var a in argv[1..]) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException(string.Join(' ', argv)); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    // ------------------------------------------------------------------ hostile input

    private T Bounded<T>(string what, Func<T> work, TimeSpan? cpu = null, long allocated = 256L << 20)
    {
        (T Result, WorkCost Cost)? done = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { done = WorkMeter.Measure(work); }
            catch (Exception e) { failure = e; }
        }, maxStackSize: 1 << 20) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(30)), $"{what}: still running after 30 s");
        if (failure is not null) throw new Xunit.Sdk.XunitException($"{what} threw: {failure}");
        var (result, cost) = done!.Value;
        output.WriteLine($"{what}: {cost}");
        Assert.True(cost.Cpu < (cpu ?? WorkMeter.ColdCpuBound), $"{what}: {cost}");
        Assert.True(cost.Allocated < allocated, $"{what}: {cost}");
        return result;
    }

    [Fact]
    public void A_huge_file_is_edited_in_bounded_time_and_memory()
    {
        var sb = new StringBuilder("services:\n");
        for (var i = 0; i < 20_000; i++) sb.Append($"  s{i}:\n    image: x\n    labels:\n      - k{i}=v\n");
        var yaml = sb.ToString(); // ~1.3 MB, 20,000 services
        // four YAML reads (before, the edit, the check) of 1.3 MB: ~2 s CPU, ~400 MiB allocated
        var result = Bounded("20,000 services", () => ComposeLabels.Set(yaml, "s19999", Suggested), cpu: TimeSpan.FromSeconds(10), allocated: 1L << 30);
        Assert.Null(result.Error);
        Assert.Equal(Rules, LabelsOf(result.Text!, "s19999")["whalewall.rules"]);
        var diff = Bounded("diff of it", () => UnifiedDiff.Render(yaml, result.Text!, "a", "b"));
        Assert.Contains("+      - whalewall.enabled=true\n", diff);
    }

    [Fact]
    public void A_file_past_the_size_limit_is_refused_before_it_is_read()
    {
        var yaml = "services:\n  web:\n    image: x\n" + new string('#', ComposeLabels.MaxChars);
        var result = Bounded("over the limit", () => ComposeLabels.Set(yaml, "web", Suggested));
        Assert.Contains("larger than", result.Error);
    }

    [Theory]
    [InlineData(100_000, "[")]
    [InlineData(100_000, "{a: ")]
    public void Deep_nesting_is_refused_in_bounded_time(int depth, string open)
    {
        var yaml = "services:\n  web:\n    labels:\n      x: " + string.Concat(Enumerable.Repeat(open, depth)) + "\n";
        var result = Bounded($"depth {depth} of {open}", () => ComposeLabels.Set(yaml, "web", Suggested));
        Assert.Null(result.Text);
        Assert.NotNull(result.Error);
    }

    [Fact]
    public void Deep_block_nesting_is_refused_in_bounded_time()
    {
        var sb = new StringBuilder("services:\n  web:\n    labels:\n      x:\n");
        for (var i = 0; i < 1000; i++) sb.Append(' ', 8 + i).Append("a:\n");
        var result = Bounded("block depth 1000", () => ComposeLabels.Set(sb.ToString(), "web", Suggested));
        Assert.Null(result.Text);
        Assert.Contains("nested deeper", result.Error);
    }

    [Fact]
    public void Billion_laughs_is_refused_in_bounded_time()
    {
        var sb = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 12; i++)
            sb.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        sb.Append("services:\n  web:\n    image: x\n    x-y: *a11\n");
        var result = Bounded("billion laughs", () => ComposeLabels.Set(sb.ToString(), "web", Suggested));
        Assert.Null(result.Text);
        Assert.Contains("aliases", result.Error);
    }
}
