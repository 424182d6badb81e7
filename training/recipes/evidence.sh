#!/usr/bin/env bash
# Evidence runs for training/README.md ("Results"): does SARMAE pretraining help on real SAR?
#
#   training/recipes/evidence.sh [OUT] [DATA]     (default OUT=runs/evidence, DATA=../shared/data)
#
# 1. Pretrains the tiny preset three times on the same data (training/configs/
#    pretrain_evidence.yaml: real SAR in DATA, training splits only, never MSTAR's 15 deg test
#    chips, plus 17 Volkov Sentinel-1/Sentinel-2 fragments, 64 crops of each per epoch),
#    identical but for the method:
#      pretrain-mae   plain MAE (model.overrides.speckle.enabled=false)
#      pretrain-sare  MAE + SARE speckle
#      pretrain-sarc  MAE + SARE + SARC (EfficientNet-Lite0 teacher, alignment weight 0.5)
#      pretrain-sare1 MAE + SARE down to 1 look (log-std 1.28, the authors' level is 2.5 looks,
#                     0.70): as strong as the single-look speckle MSTAR's chips already carry
#                     (python -m sarmae_train.speckle_stats); not in the default INITS:
#                     INITS=sare1 FULL_SEEDS= WATER_SEEDS= training/recipes/evidence.sh
#    Without a teacher the optical halves of the pairs are not used: every encoder sees the
#    same SAR images.
# 2. Fine-tunes MSTAR SOC 10-class from scratch and from each encoder: 40 labels per class with
#    seeds SEEDS (default "0 1 2 3 4", "" for none; the seed also draws the 40 chips) for
#    FEW_EPOCHS (50), and all labels with seeds FULL_SEEDS (default "0 1 2 3 4", "" for none)
#    for FULL_EPOCHS (5: the config's 30 are for a GPU). Sized for a 2-core CPU: batch 32, so a peak lr of 1e-3
#    (base_lr 8e-3; the config's 1.25e-4 barely moved a tiny ViT in 360 steps: test top-1 about
#    20 % for every start). Layer-wise lr decay (0.75) is a fine-tuning device for pretrained
#    encoders: runs from scratch train every layer at the full lr (layer_decay=1).
#    Then water segmentation with WATER_SEEDS (default "0 1 2 3 4") for WATER_EPOCHS (6):
#    training/configs/finetune_water_bundled.yaml, scored on the held-out ETCI Nebraska scene, so
#    the encoder is the only difference on a mapping task too.
# 3. Prints the table (seeds as mean +- std) and the seed-by-seed paired comparison of the starts
#    with python -m sarmae_train.report, adding the held-out
#    water and ship scores of the bundled models when BUNDLED (default runs/bundled) holds the
#    runs of training/recipes/water.sh and ships.sh.
#
# Environment: PRETRAIN_ARGS / FINETUNE_ARGS add key=value overrides to every pretraining /
# fine-tuning run; LAUNCH prefixes the pretraining command (e.g.
# LAUNCH="torchrun --standalone --nproc_per_node=4 -m sarmae_train.cli" on a GPU machine).
# Finished work (an encoder or a run's metrics.json in RESULTS, default training/evidence) is
# skipped, so the script can be rerun after an interruption, also from a fresh checkout once
# RESULTS is committed; an interrupted pretraining continues with --resume. Runs are
# independent and each uses one thread, so copies of this script on the same OUT share the work:
# start one per core (each run is locked while a copy works on it). INITS (default "scratch mae
# sare sarc") limits the starts a copy fine-tunes from, and so the encoders it pretrains. Two
# more starts for the ablations of the water task: "bundled" (training/encoders/bundled, the
# encoder behind the bundled models, pretrained on the water scenes' training splits too) and
# ENCODER_nodecay (the encoder fine-tuned without layer-wise lr decay, as scratch is), e.g.
#   INITS="bundled sare_nodecay bundled_nodecay" SEEDS= FULL_SEEDS= training/recipes/evidence.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# bash reads a script as it runs it: run a snapshot, so that editing this file (or a git
# checkout) while a copy works for hours cannot change what the copy does next
if [ -z "${EVIDENCE_SNAPSHOT:-}" ]; then
  snapshot=$(mktemp "${TMPDIR:-/tmp}/evidence.XXXXXX.sh")
  cp "$0" "$snapshot"
  EVIDENCE_SNAPSHOT=$snapshot EVIDENCE_REPO=$PWD exec bash "$snapshot" "$@"
fi
cd "$EVIDENCE_REPO"
trap 'rm -f "$EVIDENCE_SNAPSHOT"' EXIT
out=${1:-runs/evidence}
data=${2:-../shared/data}
bundled=${BUNDLED:-runs/bundled}
train=".venv/bin/sarmae-train"
launch=${LAUNCH:-$train}
read -r -a pre <<<"${PRETRAIN_ARGS:-}"
read -r -a fin <<<"${FINETUNE_ARGS:-}"
read -r -a seeds <<<"${SEEDS-0 1 2 3 4}"
read -r -a full_seeds <<<"${FULL_SEEDS-0 1 2 3 4}"
read -r -a water_seeds <<<"${WATER_SEEDS-0 1 2 3 4}"
# What outlives a session: each encoder (encoder only, float16: what every fine-tuning starts
# from, in any session) and each finished fine-tuning's metrics.json + config.json are kept in
# RESULTS (default training/evidence, committed), so a fresh checkout continues where the last
# one stopped instead of pretraining and fine-tuning again.
results=${RESULTS:-training/evidence}

# Copies of this script share the runs: each run is claimed with a lock (flock, released when
# its process ends, also when killed), and a copy skips a run another one holds.
lock_fd=
claim() {  # DIR: true when this copy may run DIR
  mkdir -p "$out"
  exec {lock_fd}>"$out/.$(basename "$1").lock"
  flock -n "$lock_fd" || { release; return 1; }
}
release() { exec {lock_fd}>&-; }

pretrain() {  # variant [overrides...]: -> $results/encoders/variant.safetensors
  local variant=$1 dir="$out/pretrain-$1" resume=()
  shift
  local encoder="$results/encoders/$variant.safetensors"
  [ -f "$encoder" ] && return 0
  # the encoder is needed by what follows: wait for a copy that is pretraining it
  exec {lock_fd}>"$out/.pretrain-$variant.lock"
  flock "$lock_fd"
  [ -f "$encoder" ] && { release; return 0; }
  if [ ! -f "$dir/summary.json" ]; then
    ls "$dir"/checkpoints/state-step*.safetensors >/dev/null 2>&1 && resume=(--resume)
    $launch pretrain --config training/configs/pretrain_evidence.yaml "${resume[@]}" \
      run.out_dir="$dir" data.root="$data" "$@" "${pre[@]}"
  fi
  mkdir -p "$results/encoders"
  .venv/bin/python -c "from sarmae_core.models.checkpoint import encoder_only as e; \
e('$dir/checkpoint.safetensors', '$encoder', dtype='float16')"
  cp "$dir/log.csv" "$results/encoders/$variant.log.csv"
  cp "$dir/summary.json" "$results/encoders/$variant.summary.json"
  release
}
read -r -a inits <<<"${INITS:-scratch mae sare sarc}"
wanted() { [[ " ${inits[*]/%_nodecay/} " == *" $1 "* ]]; }  # sare_nodecay wants sare
wanted mae && pretrain mae model.overrides.speckle.enabled=false
wanted sare && pretrain sare
wanted sare1 && pretrain sare1 model.overrides.speckle.min_looks=1.0
wanted sarc && pretrain sarc 'model.overrides.sarc={"weight":0.5,"teacher":{"name":"efficientnet_lite0","stride":16}}'

finetune() {  # CONFIG NAME SEED [overrides...]: one fine-tuning per start (scratch, each encoder)
  local cfg=$1 name=$2 seed=$3
  shift 3
  for init in "${inits[@]}"; do
    local run="$name-$init-s$seed" args=() encoder=${init%_nodecay}
    local dir="$out/$run" kept="$results/runs/$run"
    # scratch trains every layer at the full lr, and so does an encoder named ENCODER_nodecay;
    # the other encoders get the authors' layer decay 0.75, whatever the task's config says
    if [ "$encoder" = scratch ] || [ "$encoder" != "$init" ]; then
      args=(optim.layer_decay=1.0)
    else
      args=(optim.layer_decay=0.75)
    fi
    case $encoder in
      scratch) ;;
      bundled) args+=(--init training/encoders/bundled/encoder.safetensors) ;;
      *) args+=(--init "$results/encoders/$encoder.safetensors") ;;
    esac
    [ -f "$kept/metrics.json" ] && continue
    claim "$dir" || continue
    if [ ! -f "$dir/metrics.json" ]; then
      rm -rf "$dir"
      $train finetune --config "training/configs/$cfg.yaml" "${args[@]}" \
        run.out_dir="$dir" run.seed="$seed" data.root="$data" run.num_workers=0 run.threads=1 \
        "$@" "${fin[@]}"
    fi
    mkdir -p "$kept"
    cp "$dir/config.json" "$kept/"
    cp "$dir/metrics.json" "$kept/"  # last: marks the run finished
    release
  done
}
for seed in "${seeds[@]}"; do
  finetune finetune_mstar mstar40 "$seed" data.shots_per_class=40 optim.epochs="${FEW_EPOCHS:-50}" \
    optim.base_lr=8e-3
done
for seed in "${full_seeds[@]}"; do
  finetune finetune_mstar mstar "$seed" optim.epochs="${FULL_EPOCHS:-5}" optim.base_lr=8e-3
done
# Water, scored on the held-out ETCI Nebraska scene: the bundled Water model's config (ETCI North
# Alabama + OMBRIA train, detail path, scale and dB augmentation), shortened to WATER_EPOCHS
for seed in "${water_seeds[@]}"; do
  finetune finetune_water_bundled water "$seed" optim.epochs="${WATER_EPOCHS:-6}" \
    data.extra_train.0.root="$data"
done

shopt -s nullglob  # a task not run yet has no rows
kept=$results/runs
runs=("$kept"/mstar40-*-s*/metrics.json "$kept"/mstar-*-s*/metrics.json "$kept"/water-*-s*/metrics.json)
for f in water/metrics.json water/metrics_ombria_test.json water_vvvh/metrics.json \
  ships/metrics.json; do
  [ -f "$bundled/$f" ] && runs+=("$bundled/$f")
done
.venv/bin/python -m sarmae_train.report "${runs[@]}" | tee "$results/table.md"
