using System.Net;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Labels;

public class LabelParserTests
{
    private static PolicyDecision Decide(string? rules, string enabled = "true")
    {
        var labels = new Dictionary<string, string> { [LabelKeys.Enabled] = enabled };
        if (rules is not null) labels[LabelKeys.Rules] = rules;
        return LabelParser.Decide(labels);
    }

    private static LabelError SingleError(string rules) =>
        Assert.Single(Assert.IsType<PolicyDecision.FailClosed>(Decide(rules)).Errors);

    [Fact]
    public void Container_without_the_enable_label_is_unmanaged() =>
        Assert.IsType<PolicyDecision.Unmanaged>(LabelParser.Decide(new Dictionary<string, string> { [LabelKeys.Rules] = "output: []" }));

    [Fact]
    public void Enabled_false_is_unmanaged() => Assert.IsType<PolicyDecision.Unmanaged>(Decide("output: []", "false"));

    [Fact]
    public void Enabled_with_a_value_other_than_true_or_false_fails_closed()
    {
        var failed = Assert.IsType<PolicyDecision.FailClosed>(Decide(null, "yes please"));
        Assert.Equal(LabelKeys.Enabled, failed.Errors.Single().Label);
    }

    [Fact]
    public void Opted_in_container_without_rules_gets_drop_all()
    {
        var enforced = Assert.IsType<PolicyDecision.Enforced>(Decide(null));
        Assert.Empty(enforced.Policy.Output);
        Assert.False(enforced.Policy.MappedPorts.External.Allow);
        Assert.False(enforced.Policy.MappedPorts.Localhost.Allow);
    }

    [Fact]
    public void Output_rule_with_ips_proto_and_ports_is_parsed()
    {
        var policy = Assert.IsType<PolicyDecision.Enforced>(Decide("""
            output:
              - ips: [198.19.0.10, 198.19.1.0/24, 2001:db8::1]
                proto: tcp
                dst_ports: [80, 1000-2000]
            """)).Policy;
        var rule = Assert.Single(policy.Output);
        Assert.Equal(L4Proto.Tcp, rule.Proto);
        Assert.Equal(["198.19.0.10", "198.19.1.0-198.19.1.255", "2001:db8::1"], rule.Ips.Select(i => i.ToString()));
        Assert.Equal([new PortRange(80, 80), new PortRange(1000, 2000)], rule.DstPorts.ToArray());
    }

    [Fact]
    public void Container_and_network_references_are_parsed()
    {
        var rule = Assert.Single(Assert.IsType<PolicyDecision.Enforced>(Decide("""
            output:
              - container: db
                network: backend
                proto: udp
                dst_ports: [5432]
            """)).Policy.Output);
        Assert.Equal(("db", "backend", L4Proto.Udp), (rule.Container, rule.Network, rule.Proto));
    }

    [Fact]
    public void Mapped_ports_are_parsed()
    {
        var mapped = Assert.IsType<PolicyDecision.Enforced>(Decide("""
            mapped_ports:
              localhost: { allow: true }
              external:
                allow: true
                ips: [198.19.0.20]
            """)).Policy.MappedPorts;
        Assert.True(mapped.Localhost.Allow);
        Assert.True(mapped.External.Allow);
        Assert.Equal(AddressRange.Single(IPAddress.Parse("198.19.0.20")), Assert.Single(mapped.External.Ips));
    }

    [Theory]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    color: red\n", "output[0].color", 3, "unknown key")]
    [InlineData("outputs: []\n", "outputs", 1, "unknown key")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n  - ips: [not-an-ip]\n", "output[1].ips[0]", 3, "not an IP address")]
    [InlineData("output:\n  - proto: tcp\n    dst_ports: [70000]\n", "output[0].dst_ports[0]", 3, "not a port")]
    [InlineData("output:\n  - proto: tcp\n    dst_ports: [90-80]\n", "output[0].dst_ports[0]", 3, "ends before it starts")]
    [InlineData("output:\n  - proto: icmpish\n", "output[0].proto", 2, "unknown proto")]
    [InlineData("output:\n  - dst_ports: [80]\n", "output[0].dst_ports", 2, "need `proto`")]
    [InlineData("output:\n  - ips: [198.19.0.1/24]\n", "output[0].ips[0]", 2, "host bits set")]
    [InlineData("output:\n  - ips: [198.19.0.1]\n    container: db\n", "output[0]", 2, "one of `ips`, `container` or `hosts`")]
    [InlineData("output:\n  - {}\n", "output[0]", 2, "empty rule")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    log_prefix: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n", "output[0].log_prefix", 3, "at most 127")]
    [InlineData("mapped_ports:\n  external: { allow: maybe }\n", "mapped_ports.external.allow", 2, "true or false")]
    [InlineData("output: 5\n", "output", 1, "must be a list")]
    [InlineData("output:\n  - ips: 198.19.0.10\n", "output[0].ips", 2, "must be a list")]
    [InlineData("- a\n- b\n", "", 1, "must be a mapping")]
    [InlineData("output: [\n", "", 2, "invalid YAML")]
    [InlineData("output:\n  - ips: [1.2]\n", "output[0].ips[0]", 2, "not an IP address")]
    // a tagged key was not read (looked up with its tag) yet passed the key check (by its value):
    // `!!str ips` allowed any destination, `!!str dst_ports` any port, under external any client
    [InlineData("output:\n  - !!str ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [80]\n", "output[0].ips", 2, "tagged key")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    !!str dst_ports: [80]\n", "output[0].dst_ports", 4, "tagged key")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    !x proto: tcp\n", "output[0].proto", 3, "tagged key")]
    [InlineData("mapped_ports:\n  external:\n    allow: true\n    !!str ips: [198.19.0.10]\n", "mapped_ports.external.ips", 4, "tagged key")]
    [InlineData("!!str output:\n  - ips: [198.19.0.10]\n", "output", 1, "tagged key")]
    // icmp_types without a proto was ignored: the rule allowed every protocol and port
    [InlineData("output:\n  - ips: [198.19.0.10]\n    icmp_types: [echo-request]\n", "output[0].icmp_types", 3, "needs `proto: icmp` or `proto: icmpv6`")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    icmp_types: [echo-request]\n", "output[0].icmp_types", 4, "needs `proto: icmp` or `proto: icmpv6`")]
    public void Invalid_rules_fail_closed_with_path_and_line(string rules, string path, int line, string message)
    {
        var error = SingleError(rules);
        Assert.Equal(LabelKeys.Rules, error.Label);
        Assert.Equal(path, error.Path);
        Assert.Equal(line, error.Line);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Every_error_is_reported_not_just_the_first()
    {
        var failed = Assert.IsType<PolicyDecision.FailClosed>(Decide("""
            output:
              - ips: [bad]
              - proto: sctp
            mapped_ports:
              sideways: {}
            """));
        Assert.Equal(["output[0].ips[0]", "output[1].proto", "mapped_ports.sideways"], failed.Errors.Select(e => e.Path));
    }

    [Fact]
    public void Invalid_policy_is_drop_all()
    {
        var failed = Assert.IsType<PolicyDecision.FailClosed>(Decide("output:\n  - ips: [198.19.0.10]\n    bogus: 1\n"));
        Assert.Same(ContainerPolicy.DropAll, failed.EffectivePolicy);
    }

    [Fact]
    public void Oversized_label_is_refused()
    {
        var huge = "output:\n" + string.Concat(Enumerable.Repeat("  - ips: [198.19.0.10]\n", 4000));
        Assert.Contains("larger than", SingleError(huge).Message);
    }

    [Fact]
    public void Too_many_rules_are_refused()
    {
        var many = "output:\n" + string.Concat(Enumerable.Repeat("  - ips: [198.19.0.10]\n", LabelKeys.MaxRules + 1));
        Assert.Contains("at most", SingleError(many).Message);
    }

    [Fact]
    public void Error_message_names_label_path_and_line()
    {
        var error = SingleError("output:\n  - ips: [nope]\n");
        Assert.Equal("whalewall.rules: output[0].ips[0] (line 2): \"nope\" is not an IP address, CIDR or range", error.ToString());
    }

    [Theory]
    [InlineData("output:\n  - ips: []\n", "output[0].ips")]
    [InlineData("output:\n  - ip: []\n", "output[0].ip")]
    [InlineData("output:\n  - hosts: []\n", "output[0].hosts")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: []\n", "output[0].dst_ports")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    port: []\n", "output[0].port")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    src_ports: []\n", "output[0].src_ports")]
    [InlineData("output:\n  - ips: [198.19.0.10]\n    proto: icmp\n    icmp_types: []\n", "output[0].icmp_types")]
    [InlineData("mapped_ports:\n  external: { allow: true, ips: [] }\n", "mapped_ports.external.ips")]
    public void An_empty_list_that_would_mean_any_is_an_error(string rules, string path)
    {
        var error = SingleError(rules);
        Assert.Equal(path, error.Path);
        Assert.Contains("empty list", error.Message);
    }

    [Fact]
    public void Empty_output_is_no_rule_and_external_without_ips_is_every_client()
    {
        var policy = Assert.IsType<PolicyDecision.Enforced>(Decide("output: []\nmapped_ports:\n  external: { allow: true }\n")).Policy;
        Assert.Empty(policy.Output);
        Assert.True(policy.MappedPorts.External.Allow);
        Assert.Empty(policy.MappedPorts.External.Ips);
    }

    public static TheoryData<string> OwnChainNames()
    {
        var names = new TheoryData<string>();
        foreach (var chain in WhaleWall.Firewall.Nft.NftLayout.FixedChains) names.Add(chain);
        foreach (var prefix in WhaleWall.Firewall.Nft.NftLayout.OwnChainPrefixes) names.Add(prefix + "0123abcd");
        names.Add(WhaleWall.Firewall.Nft.RuleChain.ForEstablished(1, 2).Name);
        names.Add(WhaleWall.Firewall.Nft.RuleChain.ForRule("x ", null, null, 3).Name);
        return names;
    }

    [Theory]
    [MemberData(nameof(OwnChainNames))]
    public void A_verdict_cannot_jump_into_a_chain_of_WhaleWall(string chain)
    {
        var error = SingleError($"output:\n  - ips: [198.19.0.10]\n    verdict: {{ chain: {chain} }}\n");
        Assert.Equal("output[0].verdict.chain", error.Path);
        Assert.Contains("own chain names", error.Message);
    }

    [Theory]
    [InlineData("audit")]
    [InlineData("R_audit")]
    [InlineData("queue_x")]
    public void Operator_chains_outside_the_reserved_names_are_accepted(string chain) =>
        Assert.IsType<PolicyDecision.Enforced>(Decide($"output:\n  - ips: [198.19.0.10]\n    verdict: {{ chain: {chain} }}\n"));

    [Theory]
    [InlineData("input_est_queue: 32767, output_est_queue: 0", true)]
    [InlineData("input_est_queue: 32768, output_est_queue: 1", false)]
    [InlineData("input_est_queue: 1, output_est_queue: 65535", false)]
    [InlineData("queue: 65535", true)]
    [InlineData("queue: 65536", false)]
    public void Est_queue_numbers_stop_at_32767_plain_queues_at_65535(string verdict, bool valid)
    {
        var decision = Decide($"output:\n  - ips: [198.19.0.10]\n    verdict: {{ {verdict} }}\n");
        Assert.Equal(valid, decision is PolicyDecision.Enforced);
    }

    [Fact]
    public void A_merge_key_is_refused_with_a_reason() =>
        Assert.Contains("merge keys (`<<`) are not supported",
            SingleError("output:\n  - &base { ips: [198.19.0.10] }\n  - <<: *base\n    proto: tcp\n").Message);

    [Fact]
    public void Aliases_may_share_a_value()
    {
        var policy = Assert.IsType<PolicyDecision.Enforced>(Decide(
            "output:\n  - ips: &servers [198.19.0.10, 198.19.0.11]\n    proto: tcp\n  - ips: *servers\n    proto: udp\n")).Policy;
        Assert.Equal(2, policy.Output[1].Ips.Length);
    }

    [Fact]
    public void A_rule_that_expands_past_the_element_limit_is_an_error_with_its_path()
    {
        var ips = string.Join(", ", Enumerable.Range(0, 64).Select(i => $"198.19.0.{i}"));
        var ports = string.Join(", ", Enumerable.Range(1, 65).Select(p => p.ToString()));
        var error = SingleError($"output:\n  - ips: [198.19.0.10]\n  - ips: [{ips}]\n    proto: tcp\n    dst_ports: [{ports}]\n");
        Assert.Equal(("output[1]", 3), (error.Path, error.Line));
        Assert.Equal("this rule expands to 4160 set elements per container address (64 destinations x 1 source ports or ICMP types x 65 destination ports), " +
            "more than the limit of 4096; split it or use ranges/CIDRs", error.Message);
    }

    [Fact]
    public void Rules_that_together_expand_past_the_element_limit_are_an_error()
    {
        var ips = string.Join(", ", Enumerable.Range(0, 64).Select(i => $"198.19.0.{i}"));
        var ports = string.Join(", ", Enumerable.Range(1, 40).Select(p => p.ToString()));
        var rule = $"  - ips: [{ips}]\n    proto: tcp\n    dst_ports: [{ports}]\n";
        var error = SingleError("output:\n" + rule + rule.Replace("tcp", "udp"));
        Assert.Equal("", error.Path);
        Assert.Contains("the rules together expand to 5120 set elements", error.Message);
    }

    [Fact]
    public void A_host_name_counts_as_every_address_its_resolver_keeps()
    {
        static string Names(int n) => string.Join(", ", Enumerable.Range(0, n).Select(i => $"h{i}.example.com"));
        // 128 names x 32 addresses x 1 port: exactly the limit
        Assert.IsType<PolicyDecision.Enforced>(Decide($"output:\n  - hosts: [{Names(128)}]\n    proto: tcp\n    dst_ports: [443]\n"));
        var error = SingleError($"output:\n  - hosts: [{Names(129)}]\n    proto: tcp\n    dst_ports: [443]\n");
        Assert.Equal(("output[0]", 2), (error.Path, error.Line));
        Assert.Contains($"this rule expands to {129 * PolicySize.MaxAddressesPerHost} set elements per container address " +
            $"(129 host names x up to {PolicySize.MaxAddressesPerHost} addresses each", error.Message);
    }

    [Fact]
    public void The_reviews_hosts_label_is_refused_at_parse_time()
    {
        // 16 rules of `proto: icmp` and 256 names each: 94 MB and 160 ms per compile before
        var rules = "output:\n" + string.Concat(Enumerable.Range(0, 16).Select(r =>
            "- proto: icmp\n  hosts: [" + string.Join(", ", Enumerable.Range(0, 256).Select(i => $"{r:x}{i:x2}.io")) + "]\n"));
        var errors = Assert.IsType<PolicyDecision.FailClosed>(Decide(rules)).Errors;
        Assert.Equal(16, errors.Length);
        Assert.All(errors, e => Assert.Contains("256 host names x up to 32 addresses each", e.Message));
    }

    [Fact]
    public void Quoted_keys_are_read_like_plain_ones()
    {
        var rule = Assert.Single(Assert.IsType<PolicyDecision.Enforced>(
            Decide("output:\n  - \"ips\": [198.19.0.10]\n    'proto': tcp\n    \"dst_ports\": [80]\n")).Policy.Output);
        Assert.Equal((1, L4Proto.Tcp, 1), (rule.Ips.Length, rule.Proto, rule.DstPorts.Length));
    }

    [Fact]
    public void Label_text_in_errors_is_escaped()
    {
        var error = SingleError("output:\n  - ips: [\"198.19.0.1\\nwhalewall: all good\\u202e\"]\n");
        Assert.DoesNotContain('\n', error.ToString());
        Assert.DoesNotContain('\u202e', error.ToString());
        Assert.Contains("198.19.0.1\\nwhalewall: all good\\u{202E}", error.ToString());
    }

    [Fact]
    public void A_hostile_key_is_escaped_and_cut_in_the_path()
    {
        var key = "k\\n" + new string('x', 5000);
        var error = SingleError($"? \"{key}\"\n: 1\n"); // an explicit key: an implicit one stops at 1,024 characters
        Assert.Contains("unknown key", error.Message);
        Assert.True(error.Path.Length < 100, error.Path);
        Assert.DoesNotContain('\n', error.ToString());
    }
}
