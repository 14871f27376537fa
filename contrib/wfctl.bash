# bash completion for wfctl (workflow-node's command for people).
#
# Install: copy to /usr/share/bash-completion/completions/wfctl (meson
# install does), or `source` it from ~/.bashrc.  Plain bash: it needs neither
# the bash-completion package nor its helpers.
#
# Completes commands, flags and their fixed values, and the names of what is
# in etcd: step keys (describe, logs, cancel, get steps), action refs (run,
# get actions) and node names (--node, get nodes).  Names come from the same
# wfctl the line starts with (`wfctl get KIND -o name`), with the --etcd,
# --prefix and etcd access flags (TLS files, user, password file) already on
# the line, so they match what the command will see.  An
# unreachable etcd just completes nothing (wfctl fails quietly to stderr,
# which is discarded).

_wfctl_names() {
  # $1: steps|actions|nodes.  Uses _wfctl_bin and _wfctl_conn from _wfctl.
  "$_wfctl_bin" "${_wfctl_conn[@]}" get "$1" -o name 2>/dev/null
}

_wfctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local _wfctl_bin=${COMP_WORDS[0]}
  local -a _wfctl_conn=()
  local cmd= i w
  local -a args=()
  local global_flags="--etcd --prefix --etcd-cacert --etcd-cert --etcd-key --etcd-user
    --etcd-password-file --help"
  local node_access="--token-file --cacert --node-cert --node-key"
  # Flags that take a value: the word after one is not a command or argument.
  local valued=" --etcd --prefix -f --filename --file --node -o --output --log-root --with
    --timeout --mask-params --etcd-cacert --etcd-cert --etcd-key --etcd-user
    --etcd-password-file --token-file --cacert --node-cert --node-key "

  # Walk the words before the cursor: find the command, its arguments, and
  # the connection flags to pass on to the name lookups.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case $w in
      --etcd | --prefix | --etcd-cacert | --etcd-cert | --etcd-key | --etcd-user | \
        --etcd-password-file)
        _wfctl_conn+=("$w" "${COMP_WORDS[i + 1]}")
        ((i++))
        continue
        ;;
      --etcd=* | --prefix=* | --etcd-cacert=* | --etcd-cert=* | --etcd-key=* | --etcd-user=* | \
        --etcd-password-file=*)
        _wfctl_conn+=("$w")
        continue
        ;;
    esac
    if [[ $valued == *" $w "* ]]; then
      ((i++))
    elif [[ $w == -* ]]; then
      :
    elif [[ -z $cmd ]]; then
      cmd=$w
    else
      args+=("$w")
    fi
  done

  COMPREPLY=()
  # The value of a flag.
  case $prev in
    -o | --output)
      if [[ $cmd == describe ]]; then
        COMPREPLY=($(compgen -W "text json yaml" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "table json yaml name" -- "$cur"))
      fi
      return
      ;;
    -f | --filename | --file | --etcd-cacert | --etcd-cert | --etcd-key | \
      --etcd-password-file | --token-file | --cacert | --node-cert | --node-key)
      COMPREPLY=($(compgen -f -- "$cur"))
      return
      ;;
    --log-root)
      COMPREPLY=($(compgen -d -- "$cur"))
      return
      ;;
    --node)
      COMPREPLY=($(compgen -W "$(_wfctl_names nodes)" -- "$cur"))
      return
      ;;
    --etcd | --prefix | --with | --timeout | --mask-params | --etcd-user)
      return
      ;;
  esac

  if [[ $cur == -* ]]; then
    local flags=
    case $cmd in
      apply) flags="-f --filename --node" ;;
      get) flags="-o --output" ;;
      describe) flags="-o --output --mask-params" ;;
      logs) flags="-f --follow --log-root $node_access" ;;
      run) flags="--node --with --timeout --log-root $node_access" ;;
    esac
    COMPREPLY=($(compgen -W "$flags $global_flags" -- "$cur"))
    return
  fi

  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "apply get describe logs cancel run version help" -- "$cur"))
    return
  fi

  case $cmd in
    get)
      if ((${#args[@]} == 0)); then
        COMPREPLY=($(compgen -W "steps actions nodes" -- "$cur"))
      else
        case ${args[0]} in
          step | steps) COMPREPLY=($(compgen -W "$(_wfctl_names steps)" -- "$cur")) ;;
          action | actions) COMPREPLY=($(compgen -W "$(_wfctl_names actions)" -- "$cur")) ;;
          node | nodes) COMPREPLY=($(compgen -W "$(_wfctl_names nodes)" -- "$cur")) ;;
        esac
      fi
      ;;
    describe | logs | cancel)
      ((${#args[@]} == 0)) && COMPREPLY=($(compgen -W "$(_wfctl_names steps)" -- "$cur"))
      ;;
    run)
      ((${#args[@]} == 0)) && COMPREPLY=($(compgen -W "$(_wfctl_names actions)" -- "$cur"))
      ;;
  esac
}

complete -F _wfctl wfctl
