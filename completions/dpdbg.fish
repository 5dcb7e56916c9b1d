# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dpdbg_global_optspecs
    string join \n bpffs= server= tls-ca= tls-cert= tls-key= tls-server-name= insecure o/output= h/help V/version
end

function __fish_dpdbg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dpdbg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dpdbg_using_subcommand
    set -l cmd (__fish_dpdbg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dpdbg -n "__fish_dpdbg_needs_command" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_needs_command" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_needs_command" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "datapath" -d 'Load, attach, detach, unload and inspect the datapath'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "lab" -d 'The built-in lab: endpoints in network namespaces with the datapath attached'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "monitor" -d 'Stream datapath events (trace, drop, policy verdict) as decoded packets'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "bpf" -d 'dpdbg\'s own maps, typed: endpoints, policy, conntrack, metrics, ipcache'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "map" -d 'Any BPF map on the system, decoded through BTF'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "prog" -d 'Every BPF program on the system'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "serve" -d 'Read the datapath\'s events and serve them to many clients (Hubble\'s Observer API)'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "observe" -d 'Flows from `dpdbg serve`, with Hubble\'s flags and output'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "tui" -d 'A live dashboard: endpoints, policy verdicts, conntrack, drops and programs'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "trace" -d 'What the loaded datapath would do with a packet, and why: run on a crafted packet by the same code, without changing any map'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "explain" -d 'Why a drop or a denied policy verdict happened: one event (a `monitor -j` line or an `observe -o json` flow, on stdin or as EVENT) traced against the maps as they are now, and held against what happened'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "verify" -d 'Check a connectivity matrix (rows of from, to, proto, port, expect allow|deny) through trace\'s dry run: no packet sent, no map changed; exit 0 when every row holds, 1 when one does not, 2 for a bad file'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "health" -d 'Ask `dpdbg serve` how it is (grpc.health.v1): exit 0 when SERVING, for probes'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "status" -d 'One verdict on the node: ok (exit 0), degraded (exit 3) or failed (exit 4), with the reasons'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "debuginfo" -d 'One file for an incident: status, settings, maps, programs and their instructions, attachments, pins, the lab, recent flows, kernel log (a .tar.gz with a manifest, or -o json)'
complete -c dpdbg -n "__fish_dpdbg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "load" -d 'Load the datapath and pin its programs and maps under <bpffs>/dpdbg/'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "unload" -d 'Detach from every interface and remove every program, link and map pin'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "attach" -d 'Attach the datapath to the TC ingress and egress of each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "detach" -d 'Detach the datapath from each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "status" -d 'Show what is loaded: programs, attached interfaces, maps, settings'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "config" -d 'Show the settings, or change the run-time ones without a reload (e.g. `dpdbg datapath config aggregation=none`)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and not __fish_seen_subcommand_from load unload attach detach status config help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l events -d 'Where events go: a BPF ring buffer, or a perf event array (one buffer per CPU)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l snaplen -d 'Bytes of each packet copied into its event (0 to 9216, a jumbo frame; 1518 takes a whole Ethernet frame)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l aggregation -d 'Trace events: none = every packet, medium = new connections and TCP flag changes, maximum = no traces' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l map-size -d 'Override a map\'s size, e.g. --map-size ct4=1048576 (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l debug -d 'Print drop reasons to the kernel trace pipe as well'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from load" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from unload" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l mode -d 'tcx (kernel 6.6+, default when available) or clsact' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from attach" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from detach" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from config" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "load" -d 'Load the datapath and pin its programs and maps under <bpffs>/dpdbg/'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "unload" -d 'Detach from every interface and remove every program, link and map pin'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "attach" -d 'Attach the datapath to the TC ingress and egress of each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "detach" -d 'Detach the datapath from each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show what is loaded: programs, attached interfaces, maps, settings'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "config" -d 'Show the settings, or change the run-time ones without a reload (e.g. `dpdbg datapath config aggregation=none`)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand datapath; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -f -a "up" -d 'Create endpoints (a network namespace and veth pair each), load and attach the datapath'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -f -a "traffic" -d 'Send ICMP, TCP and UDP over IPv4 and IPv6 between the lab\'s endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -f -a "down" -d 'Remove the lab: detach, unload what the lab loaded, delete the namespaces'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and not __fish_seen_subcommand_from up traffic down help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l endpoints -d 'Number of endpoints' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l events -d 'Event transport of the datapath the lab loads' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l mode -d 'tcx or clsact (default: tcx when the kernel has it)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from traffic" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "up" -d 'Create endpoints (a network namespace and veth pair each), load and attach the datapath'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "traffic" -d 'Send ICMP, TCP and UDP over IPv4 and IPv6 between the lab\'s endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "down" -d 'Remove the lab: detach, unload what the lab loaded, delete the namespaces'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s t -l type -d 'Only these event types (repeatable)' -r -f -a "trace\t''
drop\t''
policy-verdict\t''
kernel-drop\t'Packets the kernel dropped outside the datapath (skb:kfree_skb), with its reason'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l from -d 'Only packets one of these endpoints sent, by id or NAMESPACE/POD (repeatable: any of them, as cilium-dbg\'s list)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l to -d 'Only packets sent to one of these endpoints, by id or NAMESPACE/POD (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l related-to -d 'Only events of one of these endpoints, either way, by id or NAMESPACE/POD (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l ip -d 'Only packets from or to this address or CIDR (repeatable: any of them)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l port -d 'Only packets from or to this port' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l proto -d 'Only this protocol: tcp, udp, icmp, icmpv6 or a number' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l verdict -d 'Only forwarded (allow) or dropped (deny) packets' -r -f -a "allow\t''
deny\t''"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l count -d 'Stop after COUNT matching events' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l since -d 'Skip events older than this (e.g. 30s, 5m), such as those waiting in the ring' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l until -d 'Stop after this long (e.g. 10s)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l explain-rate -d 'Explanations a second, at most; the rest are counted as skipped' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l pcap -d 'Write the captured packets to a pcap file ("-" for stdout)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l pcapng -d 'Write the captured packets to a pcapng file ("-" for stdout): one interface block per interface (its name), and on each packet a comment with the event\'s verdict, drop reason, rule, identities, endpoint, policy match and conntrack state (tshark: frame.comment)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s w -l write -d 'Also keep the raw records in FILE (dpdbg\'s capture format, with the node\'s time base and interface names), for `monitor -r`; events are still printed' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s r -l read -d 'Play back a capture written with --write ("-" for stdin) instead of the live datapath, through the same filters and outputs' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s n -l numeric -d 'Numbers only: identities (no "world", "host") and endpoints (no names)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s j -l json -d 'JSON, one object per line (the same as -o jsonl)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s v -l verbose -d 'Show every decoded layer (-v); -vv adds a hexdump'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l hex -d 'Show a hexdump of the captured bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l explain -d 'Explain each drop and denied policy verdict under it: its packet traced against the maps as they are now (deciding rule, policy level, conntrack state, identity source), and whether today\'s answer differs from what happened'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand monitor" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "endpoint" -d 'Local endpoints: IP → endpoint id, identity, interface, policy enforcement'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "policy" -d 'Policy rules with their allow/deny counters'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "ct" -d 'Connection tracking entries'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "metrics" -d 'Datapath counters by reason and direction'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "ipcache" -d 'CIDR → identity for peers that are not local endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "identity" -d 'Security identities and their labels'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and not __fish_seen_subcommand_from endpoint policy ct metrics ipcache identity help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "list" -d 'List every endpoint address'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "get" -d 'Show one endpoint\'s addresses'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "add" -d 'Add (or replace) an endpoint address'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "set" -d 'Change an endpoint\'s enforcement or identity, for every address it has'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "delete" -d 'Delete an endpoint (all its addresses, or just --ip)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from endpoint" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -f -a "get" -d 'Show the rules (of one endpoint, or all) with their counters'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -f -a "add" -d 'Add a rule. Deny wins: an allow where a deny holds the same key is refused'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -f -a "delete" -d 'Delete a rule'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from policy" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -f -a "list" -d 'List conntrack entries'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -f -a "flush" -d 'Remove every entry'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -f -a "gc" -d 'Remove expired entries and say how many'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ct" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -f -a "list" -d 'Packets and bytes by reason and direction, summed over CPUs'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from metrics" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -f -a "list" -d 'List CIDRs and their identities'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -f -a "get" -d 'The identity the datapath gives a peer address, and where it comes from: a local endpoint, the longest ipcache prefix holding it, or world'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -f -a "upsert" -d 'Map a CIDR to an identity'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -f -a "delete" -d 'Remove a CIDR'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from ipcache" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -f -a "list" -d 'Every identity with its labels (the reserved ones too)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -f -a "get" -d 'One identity\'s labels'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -f -a "add" -d 'Give an identity its labels (replacing any it had)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -f -a "delete" -d 'Forget an identity\'s labels'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from identity" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "endpoint" -d 'Local endpoints: IP → endpoint id, identity, interface, policy enforcement'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "policy" -d 'Policy rules with their allow/deny counters'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "ct" -d 'Connection tracking entries'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "metrics" -d 'Datapath counters by reason and direction'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "ipcache" -d 'CIDR → identity for peers that are not local endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "identity" -d 'Security identities and their labels'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand bpf; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "list" -d 'List every BPF map on the system'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "dump" -d 'Print every entry of a map (MAP: a name, a pin path or id:N)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "get" -d 'Print one entry. KEY is JSON (decoded through the map\'s BTF) or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "update" -d 'Create or replace one entry. KEY and VALUE are JSON or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "watch" -d 'Show entries added, removed and changed between reads, every interval, until Ctrl-C (or --count intervals). A changed entry lists the decoded fields that differ, old -> new. A name or pin that comes to point at another map is said so, and the new map compared with the old'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "delete" -d 'Delete one entry'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and not __fish_seen_subcommand_from list dump get update watch delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from dump" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l partial -d 'Fields a JSON key leaves out are zero (default: every field must be given)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l flag -d 'any: create or replace; noexist: only create; exist: only replace' -r -f -a "any\t'Create or replace'
noexist\t'Only create: fail when the key exists'
exist\t'Only replace: fail when the key is absent'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l partial -d 'Fields the JSON leaves out are zero (default: every field must be given)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l interval -d 'Milliseconds between reads' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l count -d 'Stop after this many intervals' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l count-only -d 'One line per interval with the numbers added, removed and changed'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from watch" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l partial -d 'Fields a JSON key leaves out are zero (default: every field must be given)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "list" -d 'List every BPF map on the system'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "dump" -d 'Print every entry of a map (MAP: a name, a pin path or id:N)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print one entry. KEY is JSON (decoded through the map\'s BTF) or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "update" -d 'Create or replace one entry. KEY and VALUE are JSON or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "watch" -d 'Show entries added, removed and changed between reads, every interval, until Ctrl-C (or --count intervals). A changed entry lists the decoded fields that differ, old -> new. A name or pin that comes to point at another map is said so, and the new map compared with the old'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete one entry'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand map; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -f -a "list" -d 'List every program: id, type, name, tag, attach points, maps'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -f -a "dump" -d 'Dump a program\'s instructions'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -f -a "tracelog" -d 'Print the datapath\'s bpf_printk lines from the kernel\'s trace pipe (`datapath config debug=true` turns them on), until Ctrl-C or --count'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and not __fish_seen_subcommand_from list dump tracelog help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l stats -d 'Turn on the kernel\'s run-time statistics for this long and show the runs and average ns of that window' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -f -a "xlated" -d 'The translated instructions (what the verifier left), in the kernel\'s notation as `bpftool prog dump xlated` prints them, with map references named'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from dump" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l count -d 'Stop after COUNT lines' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l all -d 'Every line of the trace pipe, not only the datapath\'s (`dpdbg:`) ones'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from tracelog" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from help" -f -a "list" -d 'List every program: id, type, name, tag, attach points, maps'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from help" -f -a "dump" -d 'Dump a program\'s instructions'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from help" -f -a "tracelog" -d 'Print the datapath\'s bpf_printk lines from the kernel\'s trace pipe (`datapath config debug=true` turns them on), until Ctrl-C or --count'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand prog; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l socket -d 'Unix socket to serve on (mode 0660)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l listen -d 'Also serve on this TCP address: with TLS when --tls-cert and --tls-key are given; plain TCP only on loopback unless --insecure' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l metrics -d 'Serve Prometheus metrics over HTTP on this address (GET /metrics): cilium\'s and Hubble\'s names, see the README. Loopback only unless --insecure (plain HTTP: no TLS)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l tls-client-ca -d 'The CA (PEM) that clients\' certificates must chain to: mutual TLS on --listen' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l socket-group -d 'The group of the unix socket (mode 0660, owned by root): its members may use it' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l buffer -d 'How many recent flows to keep for clients that ask for the last N' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l ct-gc-interval -d 'Remove expired conntrack entries this often (0 turns it off)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l events -d 'Where events go: a BPF ring buffer, or a perf event array (one buffer per CPU)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l snaplen -d 'Bytes of each packet copied into its event (0 to 9216, a jumbo frame; 1518 takes a whole Ethernet frame)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l aggregation -d 'Trace events: none = every packet, medium = new connections and TCP flag changes, maximum = no traces' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l map-size -d 'Override a map\'s size, e.g. --map-size ct4=1048576 (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l attach -d 'Attach the datapath to every interface whose name matches (a glob: lxc*, veth*, cali*), now and as they appear (netlink link notifications); repeatable' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l attach-mode -d 'How --attach attaches (default: tcx where the kernel has it, else clsact)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l node-name -d 'The node\'s name in flows, GetNodes and ServerStatus (default: the kernel\'s hostname); a Kubernetes node name (RFC 1123 subdomain)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l peer -d 'Another node of the fleet, for hubble-relay\'s peer service (peer.Peer): its node name and Observer address (ip:port, or an IP for port 4244); repeatable. This node is always one of the peers' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l peers-dns -d 'Find the fleet by a DNS name (a Kubernetes headless Service): resolved again every --peers-dns-interval, each address a peer whose name is asked from the peer itself' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l cluster-name -d 'The cluster\'s name, as cilium\'s `--cluster-name`: with TLS, each peer is named to hubble-relay under NODE.CLUSTER.hubble-grpc.cilium.io, the names cilium\'s Hubble certificates carry' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l peers-dns-interval -d 'How often --peers-dns is resolved again' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l allow-write -d 'Run commands that change the datapath for `--server` clients (policy add, endpoint set, ct flush, map update, ...); without it they are refused with PERMISSION_DENIED'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l load -d 'Load the datapath when none is loaded (with the flags below); a loaded one is kept. Without --load, serve waits for one'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l debug -d 'Print drop reasons to the kernel trace pipe as well'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand serve" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l last -d 'The last N flows (default 20 without --follow)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l first -d 'The first N flows the server still holds' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l since -d 'Flows since this time: RFC 3339, or a duration ago (5m)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l until -d 'Flows until this time: RFC 3339, a duration ago, or +DURATION from now' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l ip -d 'Source or destination IP or CIDR (repeatable: any matches)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-ip -d 'Source IP or CIDR (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-ip -d 'Destination IP or CIDR (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l port -d 'Source or destination port' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-port -d 'Source port (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-port -d 'Destination port (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l protocol -d 'tcp, udp, icmpv4, icmpv6 (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l verdict -d 'FORWARDED or DROPPED (repeatable)' -r -f -a "FORWARDED\t''
DROPPED\t''"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s t -l type -d 'Event type: trace, drop, policy-verdict' -r -f -a "trace\t''
drop\t''
policy-verdict\t''"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l tcp-flags -d 'TCP flags that must be set, e.g. SYN or SYN,ACK' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l identity -d 'Source or destination identity' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-identity -d 'Source identity (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-identity -d 'Destination identity (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l pod -d 'Source or destination pod: [NAMESPACE/]POD-PREFIX (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-pod -d 'Source pod: [NAMESPACE/]POD-PREFIX (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-pod -d 'Destination pod: [NAMESPACE/]POD-PREFIX (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s n -l namespace -d 'Source or destination namespace (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-namespace -d 'Source namespace (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-namespace -d 'Destination namespace (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s l -l label -d 'Source or destination label selector, as Kubernetes writes one (app=web, tier in (a,b), !canary; a key may carry its source, k8s:app)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l from-label -d 'Source label selector (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l to-label -d 'Destination label selector (repeatable)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l traffic-direction -d 'ingress or egress (repeatable)' -r -f -a "ingress\t''
egress\t''"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l drop-reason-desc -d 'Drop reason, by cilium\'s name (POLICY_DENIED, POLICY_DENY, …) or number' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l interface -d 'The interface the flow was seen on, by name' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l time-format -d 'How times are printed, by Hubble\'s names: StampMilli (Dec  2 07:09:29.010, the default), YearMonthDay, YearMonthDayHour, YearMonthDayHourMinute, RFC3339, RFC3339Milli, RFC3339Micro, RFC3339Nano, RFC1123Z; always in UTC. Not for -o json' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l ip-translation -d 'Print pods in place of their addresses (`--ip-translation=false`: addresses)' -r -f -a "true\t''
false\t''"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l input-file -d 'Read flows from FILE ("-" for stdin) instead of a server: Hubble\'s JSON, one response per line (`hubble observe -o json`, `dpdbg observe -o json`). Every flow it holds unless --last or --first' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l explain-rate -d 'Explanations a second, at most; the rest are counted as skipped' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l pcapng -d 'Write the packets of the flows chosen to a pcapng file ("-" for stdout) instead of printing them, each with a comment naming its verdict, drop reason, rule, identities, endpoint and conntrack state: the server\'s records of flows that happened before anyone asked (as `monitor --pcapng` writes them live). Needs the unix socket or mutual TLS' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s f -l follow -d 'Keep streaming new flows'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l all -d 'Every flow the server holds'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s 4 -l ipv4 -d 'IPv4 flows only'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s 6 -l ipv6 -d 'IPv6 flows only'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l not -d 'Negate the filter flag that follows: flows matching it are left out'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l print-raw-filters -d 'Print the filters sent to the server and stop'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l print-node-name -d 'Print each flow\'s node name'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l numeric -d 'Everything as numbers: addresses, not pods (as --ip-translation=false)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l explain -d 'Explain each dropped or denied flow under it: the node that served it traces its packet against its maps as they are now (through dpdbg.v1.Commands: `dpdbg explain` on the node) and names the deciding rule, policy level, conntrack state and identity source'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand observe" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l refresh -d 'How often the dashboard reads the maps and the events, in milliseconds' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand tui" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l from -d 'The sender: an endpoint id, NAMESPACE/POD (lab/ep1), an IP address, or a lab endpoint\'s name (ep1)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l to -d 'The receiver: an endpoint id, NAMESPACE/POD (lab/ep2), an IP address, or a lab endpoint\'s name (ep2)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l proto -d 'tcp, udp, icmp, icmpv6 or an IP protocol number' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l dport -d 'Destination port (tcp, udp)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l sport -d 'Source port (tcp, udp), or the ICMP echo id' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l tcp-flags -d 'TCP flags as tcpdump letters (S, SA, A, FA, R) or names (SYN,ACK)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l packet -d 'Trace this IP packet (hex, IP header first) instead of building one; --from/--to name the endpoints whose hooks it runs through (default: those owning its addresses), so a packet an endpoint sends from another\'s address is traced on the sender\'s interface' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l expect -d 'What the packet should get: allow (forwarded by every hook) or deny (dropped). Exit 1 with the deciding rule when it gets the other, as a row of `dpdbg verify` does' -r -f -a "allow\t'Forwarded by every hook it meets'
deny\t'Dropped by one of them, for any reason'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -s 4 -d 'Use the endpoints\' IPv4 addresses'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -s 6 -d 'Use the endpoints\' IPv6 addresses'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand trace" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand explain" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l matrix-text -d 'The matrix itself, as YAML text, in place of a file (what `--server` sends the node: the file is read where the command was typed)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l matrix-name -d 'The name reports and errors give the --matrix-text matrix (default: `matrix`)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand verify" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l service -d 'The service to ask about: "" is the process (liveness), observer.Observer serves only while a datapath is loaded (readiness)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand health" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l brief -d 'One line: the verdict and its reasons'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand status" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -s f -l file -d 'Where to write the bundle (default: dpdbg-debuginfo-NODE-TIME.tar.gz, or .json with -o json, in the current directory; "-" for stdout). `--file` as cilium-dbg debuginfo\'s: `--output` is dpdbg\'s format flag' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l bpffs -d 'bpffs mount under which dpdbg pins everything (in <DIR>/dpdbg/)' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l server -d 'Run the command on a node through its `dpdbg serve`: a unix socket path or host:port. Output and exit code are the node\'s own' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l tls-ca -d 'The CA certificate (PEM) that signed the server\'s: talk TLS to --server' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l tls-cert -d 'This side\'s certificate (PEM): the client\'s for a server that asks for one (mutual TLS), the server\'s for `serve --listen`' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l tls-server-name -d 'The name the server\'s certificate must carry (default: the host of --server)' -r
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -s o -l output -d 'Output format: a table for people, json for scripts' -r -f -a "table\t'Human-readable tables'
json\t'One JSON document'
jsonl\t'One JSON object per line (streams)'
compact\t'`observe`: one line per flow (Hubble\'s compact); a table elsewhere'
dict\t'`observe`: KEY: value blocks (Hubble\'s dict); a table elsewhere'
jsonpb\t'`observe`: Hubble\'s jsonpb, the same as json there; json elsewhere'
junit\t'`verify`: JUnit XML for CI systems (other commands refuse it)'"
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -l insecure -d 'Allow plain TCP (no TLS) to or on an address that is not loopback'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand debuginfo" -s V -l version -d 'Print version'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "datapath" -d 'Load, attach, detach, unload and inspect the datapath'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "lab" -d 'The built-in lab: endpoints in network namespaces with the datapath attached'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "monitor" -d 'Stream datapath events (trace, drop, policy verdict) as decoded packets'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "bpf" -d 'dpdbg\'s own maps, typed: endpoints, policy, conntrack, metrics, ipcache'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "map" -d 'Any BPF map on the system, decoded through BTF'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "prog" -d 'Every BPF program on the system'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "serve" -d 'Read the datapath\'s events and serve them to many clients (Hubble\'s Observer API)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "observe" -d 'Flows from `dpdbg serve`, with Hubble\'s flags and output'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "tui" -d 'A live dashboard: endpoints, policy verdicts, conntrack, drops and programs'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "trace" -d 'What the loaded datapath would do with a packet, and why: run on a crafted packet by the same code, without changing any map'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "explain" -d 'Why a drop or a denied policy verdict happened: one event (a `monitor -j` line or an `observe -o json` flow, on stdin or as EVENT) traced against the maps as they are now, and held against what happened'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "verify" -d 'Check a connectivity matrix (rows of from, to, proto, port, expect allow|deny) through trace\'s dry run: no packet sent, no map changed; exit 0 when every row holds, 1 when one does not, 2 for a bad file'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "health" -d 'Ask `dpdbg serve` how it is (grpc.health.v1): exit 0 when SERVING, for probes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "status" -d 'One verdict on the node: ok (exit 0), degraded (exit 3) or failed (exit 4), with the reasons'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "debuginfo" -d 'One file for an incident: status, settings, maps, programs and their instructions, attachments, pins, the lab, recent flows, kernel log (a .tar.gz with a manifest, or -o json)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and not __fish_seen_subcommand_from datapath lab monitor bpf map prog serve observe tui trace explain verify health status debuginfo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "load" -d 'Load the datapath and pin its programs and maps under <bpffs>/dpdbg/'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "unload" -d 'Detach from every interface and remove every program, link and map pin'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "attach" -d 'Attach the datapath to the TC ingress and egress of each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "detach" -d 'Detach the datapath from each interface'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "status" -d 'Show what is loaded: programs, attached interfaces, maps, settings'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from datapath" -f -a "config" -d 'Show the settings, or change the run-time ones without a reload (e.g. `dpdbg datapath config aggregation=none`)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "up" -d 'Create endpoints (a network namespace and veth pair each), load and attach the datapath'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "traffic" -d 'Send ICMP, TCP and UDP over IPv4 and IPv6 between the lab\'s endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "down" -d 'Remove the lab: detach, unload what the lab loaded, delete the namespaces'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "endpoint" -d 'Local endpoints: IP → endpoint id, identity, interface, policy enforcement'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "policy" -d 'Policy rules with their allow/deny counters'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "ct" -d 'Connection tracking entries'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "metrics" -d 'Datapath counters by reason and direction'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "ipcache" -d 'CIDR → identity for peers that are not local endpoints'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from bpf" -f -a "identity" -d 'Security identities and their labels'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "list" -d 'List every BPF map on the system'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "dump" -d 'Print every entry of a map (MAP: a name, a pin path or id:N)'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "get" -d 'Print one entry. KEY is JSON (decoded through the map\'s BTF) or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "update" -d 'Create or replace one entry. KEY and VALUE are JSON or hex:… bytes'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "watch" -d 'Show entries added, removed and changed between reads, every interval, until Ctrl-C (or --count intervals). A changed entry lists the decoded fields that differ, old -> new. A name or pin that comes to point at another map is said so, and the new map compared with the old'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from map" -f -a "delete" -d 'Delete one entry'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from prog" -f -a "list" -d 'List every program: id, type, name, tag, attach points, maps'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from prog" -f -a "dump" -d 'Dump a program\'s instructions'
complete -c dpdbg -n "__fish_dpdbg_using_subcommand help; and __fish_seen_subcommand_from prog" -f -a "tracelog" -d 'Print the datapath\'s bpf_printk lines from the kernel\'s trace pipe (`datapath config debug=true` turns them on), until Ctrl-C or --count'
